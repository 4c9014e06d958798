"""Repayment records screened into a prioritised collection list with a strategy per account, and its
report. Imports bot.domain and bot.core.
"""
