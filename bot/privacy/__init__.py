"""A borrower's rights over their data and the keys: export and deletion requests, key rotation,
retention trims. Imports bot.campaigns and below.
"""
