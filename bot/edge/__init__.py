"""The one public face: the gateway's Twilio webhooks (SMS, voice, status), turn order and replay,
how many turns go into Rasa at once. Imports bot.console and below.
"""
