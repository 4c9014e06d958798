"""Running the system: the process supervisor (`python -m bot run`), the chat client, the local
stand-in of Twilio's REST API. May import anything below.
"""
