"""Wrong numbers, third parties and requests to stop contact: nothing about the debt."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue.conversation import (
    SlotChange,
    Turn,
    coming_day,
    mentions_payment,
    opt_out,
    promise_on,
    someone_else_on_the_phone,
)


class ActionWrongNumber(BorrowerAction):
    """Apologise, stop messaging the number, and flag it for review."""

    intents = ("wrong_number",)
    answers_questions = False

    def name(self) -> str:
        return "action_wrong_number"

    async def act(self, turn: Turn) -> list[SlotChange]:
        await turn.services.records.flag_number(turn.conversation_id, "wrong_number", stop_contact=True)
        await turn.services.records.block_disclosure(turn.conversation_id, "wrong_number")
        turn.say("utter_wrong_number")
        return [("verified_account", None), ("awaiting", None)]


class ActionThirdParty(BorrowerAction):
    """Someone else has the phone: ask them to pass on the bank's number, nothing more."""

    intents = ("third_party",)
    answers_questions = False

    def name(self) -> str:
        return "action_third_party"

    async def act(self, turn: Turn) -> list[SlotChange]:
        return await someone_else_on_the_phone(turn)


class ActionStopContact(BorrowerAction):
    """Record the opt-out: no outbound contact until a person lifts it."""

    intents = ("stop_contact",)
    answers_questions = False

    def name(self) -> str:
        return "action_stop_contact"

    async def act(self, turn: Turn) -> list[SlotChange]:
        await opt_out(turn)
        day = coming_day(turn) if turn.verified and not turn.locked else None
        if day is not None and mentions_payment(turn.text):  # "我周五还 别再打了": both were said
            return [("awaiting", None), *await promise_on(turn, day)]
        return [("awaiting", None)]
