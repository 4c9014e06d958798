"""Greeting and the borrower's answers to our questions."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue.conversation import SlotChange, Turn, refuse_or_ask_verification
from bot.dialogue.gate import attempt_verification
from bot.domain import verification


class ActionGreet(BorrowerAction):
    """Greet back; ask an unverified borrower who they are."""

    def name(self) -> str:
        return "action_greet"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.verified:
            turn.say("utter_how_can_i_help")
            return []
        return refuse_or_ask_verification(turn)


class ActionVerify(BorrowerAction):
    """Read a detail the borrower gave: a verification answer or a promised date."""

    def name(self) -> str:
        return "action_verify"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.verified:  # dates were taken by the gate as promises or answers
            turn.say("utter_how_can_i_help")
            return []
        if verification.read_answer(turn.text).present:
            return await attempt_verification(turn)
        return refuse_or_ask_verification(turn)
