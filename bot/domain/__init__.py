"""The bank's records and the rules on them: the ledger, verification, payment links, promises and
disputes (records), plans and arrangements, consent, hand-offs, agents' accounts, visit booking and its
times, transcripts, the gateway's turn order. Imports bot.core only; no aiohttp, no rasa, no rasa_sdk
(checked by `make lint`).
"""
