"""What the borrower owes."""

from __future__ import annotations

from rasa_sdk.events import EventType

from actions.common import BorrowerAction, Turn, disclose_balance


class ActionBalance(BorrowerAction):
    """Tell a verified borrower the overdue amount, instalments and oldest due date."""

    requires_verification = True

    def name(self) -> str:
        return "action_balance"

    async def act(self, turn: Turn) -> list[EventType]:
        disclose_balance(turn)
        turn.say("utter_options")
        return []
