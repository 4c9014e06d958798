"""Settings, Redis key names, encryption and pseudonyms (crypto), the audit stream, the bot's words
(catalog, read from domain.yml), Babel formatting, dates and clocks. Imports nothing else of bot's; no
aiohttp, no Rasa.
"""
