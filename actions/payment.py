"""Paying now, claims of payment, and promises to pay."""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue import hardship
from bot.dialogue.conversation import (
    SlotChange,
    Turn,
    ask_to_confirm,
    confirm_unclear_record,
    record_paid_claim,
    record_promise_from_text,
    says_amount_is_wrong,
    says_cannot_pay,
    send_payment_link,
)
from bot.domain.ledger import overdue


class ActionPayNow(BorrowerAction):
    """Send the signed payment link."""

    intents = ("pay_now",)
    requires_verification = True

    def name(self) -> str:
        return "action_pay_now"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if overdue(turn.account, turn.today).count == 0:
            turn.say("utter_no_overdue")
            return []
        send_payment_link(turn)
        return []


class ActionAlreadyPaid(BorrowerAction):
    """Record the claim for an agent to check; reminders hold until then."""

    intents = ("already_paid",)
    requires_verification = True

    def name(self) -> str:
        return "action_already_paid"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if says_amount_is_wrong(turn.text):  # "the amount is wrong, I paid two of them": a dispute, if they say so
            return ask_to_confirm(turn, "dispute")
        return confirm_unclear_record(turn, "already_paid") or await record_paid_claim(turn)


class ActionPromiseToPay(BorrowerAction):
    """Store a promise to pay on a date within the policy window."""

    intents = ("promise_to_pay",)
    requires_verification = True

    def name(self) -> str:
        return "action_promise_to_pay"

    async def act(self, turn: Turn) -> list[SlotChange]:
        if says_cannot_pay(turn.text):  # "can't pay until friday": more time, asked for, not a promise
            return await hardship.start(turn, "grace")
        return await record_promise_from_text(turn)
