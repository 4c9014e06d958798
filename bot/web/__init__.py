"""What the gateway's aiohttp app shares with the pages mounted on it: the app keys, the client for
Rasa's tracker API, headers and body written together. Imports bot.services and below.
"""
