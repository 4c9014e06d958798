"""Reaching a borrower within the law: the contact policy (policy/contact.yml), the outbound sender
(Twilio), SMS segments and keywords, TwiML for calls. Imports bot.domain and bot.core.
"""
