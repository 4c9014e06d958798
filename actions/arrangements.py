"""Plans and grace periods, visits, and family-contact consent: the longer flows.

Their questions and answers live in bot/dialogue/hardship.py, bot/dialogue/visits.py and
bot/dialogue/family.py; these actions start them.
"""

from __future__ import annotations

from actions.common import BorrowerAction
from bot.dialogue import family, hardship, visits
from bot.dialogue.conversation import SlotChange, Turn


class ActionHardship(BorrowerAction):
    """"I can't pay it all", "can I pay monthly", "give me more time": ask why, then offer what the policy allows.

    Verification is asked inside the flow, which keeps the reason and amount the request gave.
    """

    intents = ("request_plan", "request_extension", "inform_hardship")

    def name(self) -> str:
        return "action_hardship"

    async def act(self, turn: Turn) -> list[SlotChange]:
        return await hardship.start(turn, hardship.HARDSHIP_INTENTS.get(turn.intent, "plan"))


class ActionVisit(BorrowerAction):
    """Book, move, cancel or explain a verification visit."""

    intents = ("book_visit", "reschedule_visit", "cancel_visit", "ask_visit_purpose")
    requires_verification = True

    def name(self) -> str:
        return "action_visit"

    async def act(self, turn: Turn) -> list[SlotChange]:
        return await visits.start(turn, turn.intent)


class ActionWithdrawConsent(BorrowerAction):
    """Withdraw consent to keep a family contact and delete it.

    No verification: withdrawing is the borrower's right at any time, and the
    reply says nothing about the loan. While the consent question is open, the
    question takes the message (see bot/dialogue/family.py).
    """

    intents = ("withdraw_consent",)

    def name(self) -> str:
        return "action_withdraw_consent"

    async def act(self, turn: Turn) -> list[SlotChange]:
        return await family.withdraw(turn)
