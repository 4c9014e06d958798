"""Handing the conversation to a person, and what the bot did not understand."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue import questions
from bot.dialogue.conversation import (
    HANDOFF_REASON_BY_INTENT,
    SlotChange,
    Turn,
    confirm_unclear_record,
    hand_off,
    refuse_or_ask_verification,
)
from bot.dialogue.gate import pending_until_verified

# Asking for a person or complaining needs no verification: the reply says nothing about the loan.
_OPEN_TO_ANYONE = {"request_human", "complain"}


class ActionHandOff(BorrowerAction):
    """Queue for an agent: a person asked for, a complaint, a dispute."""

    intents = ("dispute_debt", "request_human", "complain")
    answers_questions = False

    def name(self) -> str:
        return "action_hand_off"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.intent not in _OPEN_TO_ANYONE and not turn.verified:
            return refuse_or_ask_verification(turn, pending_until_verified(turn))
        if turn.intent == "dispute_debt" and (asked := confirm_unclear_record(turn, "dispute")) is not None:
            return asked  # a dispute pauses reminders and goes on the account: ask when unsure
        return await hand_off(turn, HANDOFF_REASON_BY_INTENT.get(turn.intent, "request_human"))


class ActionFallback(BorrowerAction):
    """Say we did not understand; the second time in a row, queue for an agent."""

    def name(self) -> str:
        return "action_fallback"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.previous_intent == "nlu_fallback":
            return await hand_off(turn, "fallback")
        turn.say("utter_fallback")
        return []


class ActionAffirm(BorrowerAction):
    """A yes: accepts the offer of a person after failed verification."""

    def name(self) -> str:
        return "action_affirm"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.awaiting == questions.HANDOFF_OFFER:
            return await hand_off(turn, HANDOFF_REASON_BY_INTENT.get(turn.pending or "", "verification_failed"))
        turn.say("utter_how_can_i_help")
        return []


class ActionDeny(BorrowerAction):
    """A no: declines the offer of a person, or the question we asked."""

    def name(self) -> str:
        return "action_deny"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if turn.awaiting == questions.HANDOFF_OFFER:
            turn.say("utter_handoff_declined")
            return [("awaiting", None)]
        turn.say("utter_how_can_i_help")
        return [("awaiting", None)] if turn.awaiting == questions.PROMISE_DATE else []
