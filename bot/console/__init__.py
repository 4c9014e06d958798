"""The web console served by the gateway: the agents' desk (queue, claim, transcript, replies, hand
back) and the field staff's pages, the ledger view they show. Imports bot.web and below.
"""
