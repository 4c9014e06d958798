"""A borrower's turn: the verification gate, disclosure, promises, handoffs.

No amount, date or loan detail is said before the borrower is verified; the
actions (``actions/``) run every turn through ``gate`` first. Verification
failures and "someone else is on this phone" are kept in Redis per account and
per number, so a new session does not reset them.

Functions here say things through ``Turn.say`` and return the slot changes they
make as ``(slot, value)`` pairs; the actions turn both into Rasa's terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import catalog, verification
from bot.arrangements import total_paid
from bot.dates import ImpossibleDate, find_date
from bot.formatting import long_date, money, spoken_money
from bot.ledger import Account, overdue
from bot.payments import payment_link
from bot.services import Services

SlotChange = tuple[str, Any]
# A question answered or dropped: nothing is awaited any more.
DONE: tuple[SlotChange, ...] = (("awaiting", None), ("pending", None))

# From a verified borrower, these name the day they will pay when they name a coming day:
# "can pay friday", "I can do it by the 10th". Asking for more time or a plan with a day in it
# ("give me till the 20th", "分期，每月15号还") goes to the plan and grace flow instead.
COMMITTING_INTENTS = {"inform", "pay_now", "nlu_fallback"}

# Free-text answers (an address, a relative's name and number) can look like anything to the
# classifier, "my mum's place" like a third party; only these leave such a question.
LEAVING_INTENTS = {"request_human", "stop_contact", "complain", "dispute_debt", "switch_language",
                   "withdraw_consent", "cancel_visit", "goodbye", "bot_challenge"}

# "Talk to my lawyer": contact only through someone else, which the policy then keeps to.
_REPRESENTATIVE = re.compile(r"lawyer|attorney|solicitor|representative|律师|代理人|法务", re.I)

# The queue reason for the intent that asked for a person (action_hand_off, or one pending
# verification) or for the flow that offered one (``offer_person``'s ``pending``).
HANDOFF_REASON_BY_INTENT = {
    "request_human": "request_human", "complain": "complaint", "dispute_debt": "dispute",
    "request_plan": "request_plan", "book_visit": "visit",
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
    services: Services
    now: datetime
    channel: str = "sms"  # or "voice": the gateway says which in the message's metadata
    said: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # For the voice gateway: SMS to send during the call, and "transfer" or "hangup".
    texts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    call_actions: list[str] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        """Nothing may be disclosed in this conversation, whatever is answered."""
        return self.blocked or self.failures >= verification.MAX_ATTEMPTS

    def say(self, response: str, **values: Any) -> None:
        """Queue a response from the domain, in this conversation's language."""
        values.setdefault("bank_phone", self.services.settings.bank_phone)
        values.setdefault("agent_hours", self.services.settings.agent_hours)
        self.said.append((response, self.language, values))

    def send_text(self, response: str, **values: Any) -> None:
        """Queue a response to go out by SMS (during a call: the payment link)."""
        values.setdefault("bank_phone", self.services.settings.bank_phone)
        self.texts.append((response, self.language, values))

    def money(self, amount: Any) -> str:
        if self.channel == "voice":
            return spoken_money(amount, self.account.currency, self.language)
        return self.sms_money(amount)

    def sms_money(self, amount: Any) -> str:
        """An amount as written, even during a call (for the SMS that follow it)."""
        return money(amount, self.account.currency, self.language)

    def date(self, day: date) -> str:
        return long_date(day, self.language)


def wording(turn: Turn, response: str) -> str:
    """The exact text ``response`` shows this borrower, for records that must keep what was said."""
    return catalog.render(catalog.responses(), response, turn.language, turn.channel,
                          bank_phone=turn.services.settings.bank_phone)


async def record_consent_answer(turn: Turn, purpose: str, response: str) -> str:
    """Record a yes (affirm) or no (deny) to the consent question ``response`` asked, with its wording.

    Returns:
        "granted" or "declined".
    """
    status = "granted" if turn.intent == "affirm" else "declined"
    await turn.services.consents.record(turn.account.account_id, purpose, status, turn.conversation_id,
                                        turn.channel, wording(turn, response), response)
    return status


def utc_now() -> datetime:
    return datetime.now(ZoneInfo("UTC"))


def local_today(account: Account) -> date:
    """Today's date where the borrower lives."""
    return datetime.now(ZoneInfo(account.timezone)).date()


def _intent_of(event_or_message: dict[str, Any]) -> str | None:
    parse = event_or_message.get("parse_data", event_or_message)
    return (parse.get("intent") or {}).get("name")


def previous_user_intent(events: list[dict[str, Any]]) -> str | None:
    """The intent of the borrower's message before the latest one."""
    users = [e for e in events if e.get("event") == "user"]
    return _intent_of(users[-2]) if len(users) >= 2 else None


async def load_turn(svc: Services, conversation_id: str, slots: Mapping[str, Any],
                    latest_message: Mapping[str, Any], events: list[dict[str, Any]]) -> Turn | None:
    """Build the turn from the tracker's parts, or None when the number has no ledger account."""
    found = await svc.records.for_turn(conversation_id)
    if found is None:
        return None
    sealed, chosen, failures, blocked = found
    account = svc.ledger.account_from(sealed)
    assert account is not None  # for_turn found its record
    language = slots.get("language") or chosen or account.language
    return Turn(
        conversation_id=conversation_id,
        account=account,
        language=language,
        text=latest_message.get("text") or "",
        intent=_intent_of(dict(latest_message)) or "",
        previous_intent=previous_user_intent(events),
        today=local_today(account),
        verified=slots.get("verified_account") == account.account_id,
        channel=(latest_message.get("metadata") or {}).get("channel") or "sms",
        awaiting=slots.get("awaiting"),
        pending=slots.get("pending"),
        failures=failures,
        blocked=blocked,
        services=svc,
        now=utc_now(),
    )


def refuse_or_ask_verification(turn: Turn, pending: str | None = None) -> list[SlotChange]:
    """Ask who we are talking to, unless this conversation may not be told anything.

    Args:
        pending: what to go on with once verified; the message's intent by default.
    """
    if turn.locked:
        turn.say("utter_cannot_discuss")
        return []
    turn.say("utter_ask_verification")
    return [("awaiting", "verification"), ("pending", pending or turn.intent or None)]


async def record_paid_claim(turn: Turn) -> list[SlotChange]:
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
    if turn.channel == "voice":  # a link cannot be spoken: it follows by SMS
        turn.send_text("utter_payment_link", overdue_amount=money(due.amount, turn.account.currency, turn.language),
                  payment_link=link, link_hours=settings.payment_link_ttl_hours)


def promise_window(turn: Turn) -> tuple[date, date]:
    """First and last day a promise may name."""
    return turn.today, turn.today + timedelta(days=turn.services.settings.promise_max_days)


def ask_promise_date(turn: Turn) -> list[SlotChange]:
    first, last = promise_window(turn)
    turn.say("utter_ask_promise_date", first_day=turn.date(first), last_day=turn.date(last))
    return [("awaiting", "promise_date")]


def named_date(turn: Turn) -> tuple[date | None, bool]:
    """The date the message names, and whether it named an impossible one (parsed anew on each call)."""
    try:
        return find_date(turn.text[: verification.MAX_ANSWER_LENGTH], turn.language, turn.today), False
    except ImpossibleDate:
        return None, True


async def _promise(turn: Turn, day: date | None, impossible: bool) -> list[SlotChange]:
    """Store a promise for an allowed day; otherwise explain and ask for the date again."""
    if impossible:
        turn.say("utter_date_impossible")
        return [("awaiting", "promise_date")]
    if day is None:
        return ask_promise_date(turn)
    first, last = promise_window(turn)
    if not first <= day <= last:
        turn.say("utter_promise_out_of_range", first_day=turn.date(first), last_day=turn.date(last))
        return [("awaiting", "promise_date")]
    due = overdue(turn.account, turn.today)
    await turn.services.records.promise(turn.account.account_id, turn.conversation_id, day, due.amount,
                                        paid_before=total_paid(turn.account))
    turn.say("utter_promise_confirmed", overdue_amount=turn.money(due.amount), promise_date=turn.date(day))
    return [("awaiting", None)]


async def record_promise_from_text(turn: Turn) -> list[SlotChange]:
    """The borrower promises to pay: store the date the text names, or ask for one."""
    return await _promise(turn, *named_date(turn))


async def dated_commitment(turn: Turn) -> list[SlotChange] | None:
    """A verified borrower naming a coming day within the window is promising to pay that day."""
    if not turn.verified or turn.intent not in COMMITTING_INTENTS:
        return None
    day, _ = named_date(turn)
    first, last = promise_window(turn)
    if day is None or not first < day <= last:  # "pay now" parses as today: that is not a promise
        return None
    return await _promise(turn, day, impossible=False)


async def promise_if_dated(turn: Turn) -> list[SlotChange] | None:
    """The answer to "which date?": a dated reply is handled in full, anything else is not an answer."""
    day, impossible = named_date(turn)
    if day is None and not impossible:
        return None
    return await _promise(turn, day, impossible)


def offer_person(turn: Turn, pending: str) -> list[SlotChange]:
    """Ask whether a colleague should take over; a yes queues the conversation for ``pending``'s reason."""
    turn.say("utter_offer_person")
    return [("awaiting", "handoff_offer"), ("pending", pending)]


def opt_out_source(text: str) -> str:
    """The source of an opt-out asked for in conversation: "representative" when the borrower names one."""
    return "representative" if _REPRESENTATIVE.search(text) else "conversation"


async def hand_off(turn: Turn, reason: str) -> list[SlotChange]:
    """Queue the conversation for an agent and say when to expect a reply."""
    await turn.services.records.hand_off(turn.conversation_id, turn.account.account_id, reason)
    if reason == "request_human":
        turn.call_actions.append("transfer")
    turn.say(f"utter_noted_{reason}")
    turn.say("utter_handoff")
    return [("awaiting", None)]
