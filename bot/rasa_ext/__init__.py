"""Our side of Rasa, through its extension points: the gateway's channel (credentials.yml), the tracker
and lock stores (endpoints.yml), the NLU components and the rule policy (config.yml), the action
server's token check, and the few changes that must stay patches (patches.py, installed once, checked
against Rasa's version and code). Imports bot.web and below; nothing imports it but Rasa and bot.cli.
"""
