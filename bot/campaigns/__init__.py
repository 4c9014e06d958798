"""Outbound reminder campaigns planned from a collection list, and the arq worker that sends them.
Imports bot.services, bot.screening, bot.contact and below.
"""
