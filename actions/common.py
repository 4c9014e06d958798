"""What every borrower-facing action shares: the turn, the verification gate, disclosure.

No amount, date or loan detail leaves these actions before the borrower is
verified; the gate in ``BorrowerAction.run`` enforces it for every subclass.
Verification failures and "someone else is on this phone" are kept in Redis
per account and per number, so a new session does not reset them.
"""

from __future__ import annotations

import abc
import dataclasses
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

# Intents whose message may be the birth date or ID digits we asked for.
VERIFICATION_ANSWER_INTENTS = {"inform", "promise_to_pay", "nlu_fallback", "affirm", "deny", "ask_balance",
                               "pay_now", "greet", "thank", "out_of_scope"}
# Intents whose message may be the date we asked for; "no, not tomorrow" is not one.
DATE_ANSWER_INTENTS = {"inform", "promise_to_pay", "nlu_fallback"}

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
    previous_intent: str | None
    today: date
    verified: bool
    awaiting: str | None
    pending: str | None
    failures: int
    blocked: bool
    responses: dict[str, Any]
    dispatcher: CollectingDispatcher
    services: Services

    @property
    def locked(self) -> bool:
        """Nothing may be disclosed in this conversation, whatever is answered."""
        return self.blocked or self.failures >= verification.MAX_ATTEMPTS

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


def _intent_of(event_or_message: dict[str, Any]) -> str | None:
    parse = event_or_message.get("parse_data", event_or_message)
    return (parse.get("intent") or {}).get("name")


def previous_user_intent(tracker: Tracker) -> str | None:
    """The intent of the borrower's message before the latest one."""
    users = [e for e in tracker.events if e.get("event") == "user"]
    return _intent_of(users[-2]) if len(users) >= 2 else None


async def load_turn(dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Turn | None:
    """Build the turn, or None when the conversation has no ledger account."""
    svc = services()
    account = await svc.ledger.for_conversation(tracker.sender_id)
    if account is None:
        return None
    language = tracker.get_slot("language") or await svc.records.language(tracker.sender_id) or account.language
    return Turn(
        conversation_id=tracker.sender_id,
        account=account,
        language=language,
        text=tracker.latest_message.get("text") or "",
        intent=_intent_of(tracker.latest_message) or "",
        previous_intent=previous_user_intent(tracker),
        today=local_today(account),
        verified=tracker.get_slot("verified_account") == account.account_id,
        awaiting=tracker.get_slot("awaiting"),
        pending=tracker.get_slot("pending"),
        failures=await svc.records.verification_failures(account.account_id),
        blocked=await svc.records.disclosure_blocked(tracker.sender_id),
        responses=domain.get("responses", {}),
        dispatcher=dispatcher,
        services=svc,
    )


class BorrowerAction(Action, abc.ABC):
    """Base for actions in a borrower's conversation.

    Subclasses implement ``act``; those that disclose account details set
    ``requires_verification`` and never run for an unverified borrower.
    Instances are shared by concurrent conversations: keep no state on them.
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
        if self.answers_questions:
            answered = await answer_pending_question(turn)
            if answered is not None:
                return answered
        if self.requires_verification and not turn.verified:
            return refuse_or_ask_verification(turn)
        return await self.act(turn)


async def answer_pending_question(turn: Turn) -> list[EventType] | None:
    """Treat the message as the answer to what we asked, if it is one."""
    if (turn.awaiting == "verification" and turn.intent in VERIFICATION_ANSWER_INTENTS
            and verification.read_answer(turn.text).present):
        return await attempt_verification(turn)
    if turn.awaiting == "promise_date" and turn.verified and turn.intent in DATE_ANSWER_INTENTS:
        return await record_promise_from_text(turn, ask_if_missing=False)
    return None


def refuse_or_ask_verification(turn: Turn) -> list[EventType]:
    """Ask who we are talking to, unless this conversation may not be told anything."""
    if turn.locked:
        turn.say("utter_cannot_discuss")
        return []
    turn.say("utter_ask_verification")
    return [SlotSet("awaiting", "verification"), SlotSet("pending", turn.intent or None)]


async def attempt_verification(turn: Turn) -> list[EventType]:
    """Check the answer; disclose on success, offer a person after the last failure."""
    if turn.locked:
        turn.say("utter_cannot_discuss")
        return []
    records = turn.services.records
    if not verification.matches(turn.account, verification.read_answer(turn.text)):
        if await records.verification_failed(turn.account.account_id) < verification.MAX_ATTEMPTS:
            turn.say("utter_verification_retry")
            return []
        turn.say("utter_verification_failed")
        return [SlotSet("awaiting", "handoff_offer"), SlotSet("pending", None)]
    await records.verification_passed(turn.account.account_id)
    turn.say("utter_verified")
    events: list[EventType] = [SlotSet("verified_account", turn.account.account_id), SlotSet("awaiting", None),
                               SlotSet("pending", None)]
    verified = dataclasses.replace(turn, verified=True, awaiting=None, failures=0)
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
        promised = find_date(turn.text[: verification.MAX_ANSWER_LENGTH], turn.language, turn.today)
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
