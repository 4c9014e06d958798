"""What every borrower-facing action shares: the turn, the verification gate, disclosure.

No amount, date or loan detail leaves these actions before the borrower is
verified; the gate in ``BorrowerAction.run`` enforces it for every subclass.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import catalog, verification
from bot.dates import ImpossibleDate, find_date
from bot.formatting import long_date, money
from bot.ledger import Account, overdue
from bot.payments import payment_link
from bot.services import Services, services

# Intents after which a bare date or ID digits are read as the answer to our question.
ANSWERING_INTENTS = {"inform", "promise_to_pay", "nlu_fallback", "affirm", "deny", "ask_balance",
                     "pay_now", "greet", "thank", "out_of_scope"}


HANDOFF_REASON_BY_INTENT = {
    "request_human": "request_human", "complain": "complaint", "dispute_debt": "dispute",
    "request_plan": "request_plan", "request_extension": "request_extension", "inform_hardship": "hardship",
    "book_visit": "visit", "reschedule_visit": "visit", "cancel_visit": "visit", "ask_visit_purpose": "visit",
}


@dataclass(frozen=True)
class Turn:
    """One borrower message and what the conversation knows around it."""

    conversation_id: str
    account: Account
    language: str
    text: str
    intent: str
    today: date
    verified: bool
    awaiting: str | None
    pending: str | None
    failures: int
    identity_mismatch: bool
    responses: dict[str, Any]
    dispatcher: CollectingDispatcher
    services: Services

    def say(self, response: str, **values: Any) -> None:
        """Send a response from the domain, in this conversation's language."""
        values.setdefault("bank_phone", self.services.settings.bank_phone)
        values.setdefault("agent_hours", self.services.settings.agent_hours)
        self.dispatcher.utter_message(text=catalog.render(self.responses, response, self.language, **values))

    def money(self, amount: Any) -> str:
        return money(amount, self.account.currency, self.language)

    def date(self, day: date) -> str:
        return long_date(day, self.language)


def local_today(account: Account) -> date:
    """Today's date where the borrower lives."""
    return datetime.now(ZoneInfo(account.timezone)).date()


async def load_turn(dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Turn | None:
    """Build the turn, or None when the conversation has no ledger account."""
    svc = services()
    account = await svc.ledger.for_conversation(tracker.sender_id)
    if account is None:
        return None
    return Turn(
        conversation_id=tracker.sender_id,
        account=account,
        language=tracker.get_slot("language") or account.language,
        text=tracker.latest_message.get("text") or "",
        intent=(tracker.latest_message.get("intent") or {}).get("name") or "",
        today=local_today(account),
        verified=bool(tracker.get_slot("verified")),
        awaiting=tracker.get_slot("awaiting"),
        pending=tracker.get_slot("pending"),
        failures=int(tracker.get_slot("verification_failures") or 0),
        identity_mismatch=bool(tracker.get_slot("identity_mismatch")),
        responses=domain.get("responses", {}),
        dispatcher=dispatcher,
        services=svc,
    )


class BorrowerAction(Action, abc.ABC):
    """Base for actions in a borrower's conversation.

    Subclasses implement ``act``; those that disclose account details set
    ``requires_verification`` and never run for an unverified borrower.
    """

    requires_verification = False
    answers_questions = True

    @abc.abstractmethod
    def name(self) -> str:
        """The action's name in the domain."""

    @abc.abstractmethod
    async def act(self, turn: Turn) -> list[EventType]:
        """Do the action's work for a borrower who passed the gate."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        turn = await load_turn(dispatcher, tracker, domain)
        if turn is None:
            dispatcher.utter_message(response="utter_unknown_sender")
            return []
        if self.answers_questions and turn.intent in ANSWERING_INTENTS:
            answered = await answer_pending_question(turn)
            if answered is not None:
                return answered
        if self.requires_verification and not turn.verified:
            return refuse_or_ask_verification(turn)
        return await self.act(turn)


async def answer_pending_question(turn: Turn) -> list[EventType] | None:
    """Treat the message as the answer to what we asked, if it is one."""
    if turn.awaiting == "verification" and verification.looks_like_answer(turn.text):
        return await attempt_verification(turn)
    if turn.awaiting == "promise_date" and turn.verified:
        return await record_promise_from_text(turn, ask_if_missing=False)
    return None


def refuse_or_ask_verification(turn: Turn) -> list[EventType]:
    """Ask who we are talking to, unless this conversation may not be told anything."""
    if turn.identity_mismatch or turn.failures >= verification.MAX_ATTEMPTS:
        turn.say("utter_cannot_discuss")
        return []
    turn.say("utter_ask_verification")
    return [SlotSet("awaiting", "verification"), SlotSet("pending", turn.intent or None)]


async def attempt_verification(turn: Turn) -> list[EventType]:
    """Check the answer; disclose on success, offer a person after the last failure."""
    if turn.identity_mismatch or turn.failures >= verification.MAX_ATTEMPTS:
        turn.say("utter_cannot_discuss")
        return []
    if not verification.matches(turn.account, turn.text):
        failures = turn.failures + 1
        if failures < verification.MAX_ATTEMPTS:
            turn.say("utter_verification_retry")
            return [SlotSet("verification_failures", failures)]
        turn.say("utter_verification_failed")
        return [SlotSet("verification_failures", failures), SlotSet("awaiting", "handoff_offer"),
                SlotSet("pending", None)]
    turn.say("utter_verified")
    events: list[EventType] = [SlotSet("verified", True), SlotSet("awaiting", None), SlotSet("pending", None),
                               SlotSet("verification_failures", 0)]
    verified = Turn(**{**turn.__dict__, "verified": True, "awaiting": None})
    return events + await continue_after_verification(verified)


async def continue_after_verification(turn: Turn) -> list[EventType]:
    """Do what the borrower wanted before we asked who they were."""
    disclose_balance(turn)
    if turn.pending == "pay_now":
        send_payment_link(turn)
        return []
    if turn.pending == "promise_to_pay":
        return ask_promise_date(turn)
    if turn.pending == "already_paid":
        return await record_paid_claim(turn)
    if turn.pending in HANDOFF_REASON_BY_INTENT:
        return await hand_off(turn, HANDOFF_REASON_BY_INTENT[turn.pending])
    turn.say("utter_options")
    return []


async def record_paid_claim(turn: Turn) -> list[EventType]:
    await turn.services.records.paid_claim(turn.account.account_id, turn.conversation_id)
    turn.say("utter_paid_claim")
    return []


def disclose_balance(turn: Turn) -> None:
    """Tell a verified borrower what is overdue."""
    due = overdue(turn.account, turn.today)
    if due.count == 0:
        turn.say("utter_no_overdue")
        return
    assert due.oldest_due is not None
    turn.say("utter_balance", overdue_amount=turn.money(due.amount), overdue_count=due.count,
             oldest_due=turn.date(due.oldest_due))


def send_payment_link(turn: Turn) -> None:
    """Send the signed, expiring link for this account."""
    settings = turn.services.settings
    due = overdue(turn.account, turn.today)
    link = payment_link(settings.payment_url_template, turn.account.account_id, settings.hmac_secret,
                        settings.payment_link_ttl_hours)
    turn.say("utter_payment_link", overdue_amount=turn.money(due.amount), payment_link=link,
             link_hours=settings.payment_link_ttl_hours)


def promise_window(turn: Turn) -> tuple[date, date]:
    """First and last day a promise may name."""
    return turn.today, turn.today + timedelta(days=turn.services.settings.promise_max_days)


def ask_promise_date(turn: Turn) -> list[EventType]:
    first, last = promise_window(turn)
    turn.say("utter_ask_promise_date", first_day=turn.date(first), last_day=turn.date(last))
    return [SlotSet("awaiting", "promise_date")]


async def record_promise_from_text(turn: Turn, ask_if_missing: bool) -> list[EventType] | None:
    """Store a promise if the text names an allowed date; explain otherwise.

    Returns None when the text has no date and ``ask_if_missing`` is false,
    so the caller can treat the message as something else.
    """
    try:
        promised = find_date(turn.text, turn.language, turn.today)
    except ImpossibleDate:
        turn.say("utter_date_impossible")
        return [SlotSet("awaiting", "promise_date")]
    if promised is None:
        return ask_promise_date(turn) if ask_if_missing else None
    first, last = promise_window(turn)
    if not first <= promised <= last:
        turn.say("utter_promise_out_of_range", first_day=turn.date(first), last_day=turn.date(last))
        return [SlotSet("awaiting", "promise_date")]
    due = overdue(turn.account, turn.today)
    await turn.services.records.promise(turn.account.account_id, turn.conversation_id, promised, due.amount)
    turn.say("utter_promise_confirmed", overdue_amount=turn.money(due.amount), promise_date=turn.date(promised))
    return [SlotSet("awaiting", None)]


async def hand_off(turn: Turn, reason: str) -> list[EventType]:
    """Queue the conversation for an agent and say when to expect a reply."""
    await turn.services.records.hand_off(turn.conversation_id, turn.account.account_id, reason)
    turn.say(f"utter_noted_{reason}")
    turn.say("utter_handoff")
    return [SlotSet("awaiting", None)]
