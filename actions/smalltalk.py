"""Thanks, goodbyes, "are you a bot?" and questions we cannot help with: words only."""

from __future__ import annotations

import abc

from actions.common import BorrowerAction
from bot.dialogue.conversation import SlotChange, Turn


class _SayOnly(BorrowerAction, abc.ABC):
    """Says one response, in the conversation's language and channel."""

    response: str

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.say(self.response)
        return []


class ActionThank(_SayOnly):
    """You're welcome."""

    response = "utter_thank"

    def name(self) -> str:
        return "action_thank"


class ActionBotChallenge(_SayOnly):
    """Say plainly that this is the bank's automated assistant."""

    response = "utter_bot_challenge"

    def name(self) -> str:
        return "action_bot_challenge"


class ActionOutOfScope(_SayOnly):
    """Only loan repayments here; anything else goes to the bank's number."""

    response = "utter_out_of_scope"

    def name(self) -> str:
        return "action_out_of_scope"


class ActionGoodbye(_SayOnly):
    """Say goodbye; on a call, hang up."""

    response = "utter_goodbye"

    def name(self) -> str:
        return "action_goodbye"

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.call_action("hangup")
        return await super().act(turn)
