"""What the borrower owes."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue.conversation import SlotChange, Turn, disclose_balance


class ActionBalance(BorrowerAction):
    """Tell a verified borrower the overdue amount, instalments and oldest due date."""

    intents = ("ask_balance",)
    requires_verification = True

    def name(self) -> str:
        return "action_balance"

    async def act(self, turn: Turn) -> list[SlotChange]:
        disclose_balance(turn)
        turn.say("utter_options")
        return []
