"""The conversation the actions hold: the turn and the verification gate (conversation), answers to
the bot's pending question (gate), hardship plans and grace periods, visit arranging, family consent,
asking what was meant, "what did I agree to". Imports bot.services and below; no Rasa (the actions in
actions/ translate between rasa_sdk and these).
"""
