"""Thanks, goodbyes, "are you a bot?" and questions we cannot help with: words only."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.conversation import SlotChange, Turn


class ActionThank(BorrowerAction):
    """You're welcome."""

    def name(self) -> str:
        return "action_thank"

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.say("utter_thank")
        return []


class ActionGoodbye(BorrowerAction):
    """Say goodbye; on a call, hang up."""

    def name(self) -> str:
        return "action_goodbye"

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.say("utter_goodbye")
        turn.call_actions.append("hangup")
        return []


class ActionBotChallenge(BorrowerAction):
    """Say plainly that this is the bank's automated assistant."""

    def name(self) -> str:
        return "action_bot_challenge"

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.say("utter_bot_challenge")
        return []


class ActionOutOfScope(BorrowerAction):
    """Only loan repayments here; anything else goes to the bank's number."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def act(self, turn: Turn) -> list[SlotChange]:
        turn.say("utter_out_of_scope")
        return []
