"""`python -m bot`: one module per command group. May import anything below.
"""
