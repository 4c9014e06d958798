"""A borrower's turn: the verification gate, disclosure, promises, handoffs.

No amount, date or loan detail is said before the borrower is verified; the
actions (``actions/``) run every turn through ``gate`` first. Verification
failures and "someone else is on this phone" are kept in Redis per account and
per number, so a new session does not reset them.

Functions here say things through ``Turn.say`` and return the slot changes they
make as ``(slot, value)`` pairs; the actions turn both into Rasa's terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import catalog
from bot.core.dates import ImpossibleDate, find_date
from bot.core.formatting import long_date, money, spoken_money
from bot.dialogue import cues, questions
from bot.domain import verification
from bot.domain.arrangements import total_paid
from bot.domain.ledger import Account, overdue, statement_balance
from bot.domain.payments import payment_link
from bot.services import Services

SlotChange = tuple[str, Any]
# A question answered or dropped: nothing is awaited any more.
DONE: tuple[SlotChange, ...] = (("awaiting", None), ("pending", None))

# From a verified borrower, these name the day they will pay when they name a coming day:
# "can pay friday", "I can do it by the 10th". Asking for more time or a plan with a day in it
# ("give me till the 20th", "分期，每月15号还") goes to the plan and grace flow instead. "okay yeah
# i can do it on the sixth" may read as a yes.
COMMITTING_INTENTS = {"inform", "pay_now", "nlu_fallback", "affirm"}

# Free-text answers (an address, a relative's name and number) can look like anything to the
# classifier, "my mum's place" like a third party; only these leave such a question.
LEAVING_INTENTS = {"request_human", "stop_contact", "complain", "dispute_debt", "switch_language",
                   "withdraw_consent", "cancel_visit", "goodbye", "bot_challenge"}

# Below this the classifier's own confidence is not enough for a record that changes the account.
CLEAR_CONFIDENCE = 0.6

# The queue reason for the intent that asked for a person (action_hand_off, or one pending
# verification) or for the flow that offered one (``offer_person``'s ``pending``).
HANDOFF_REASON_BY_INTENT = {
    "request_human": "request_human", "complain": "complaint", "dispute_debt": "dispute",
    "request_plan": "request_plan", "book_visit": "visit",
}


# A response from the domain, the language it is said in, and its values.
Said = tuple[str, str, dict[str, Any]]


@dataclass
class Reply:
    """What a turn says, collected as it runs (as rasa-sdk's CollectingDispatcher collects messages)."""

    said: list[Said] = field(default_factory=list)
    texts: list[Said] = field(default_factory=list)  # for the voice gateway: SMS to send during the call
    call_actions: list[str] = field(default_factory=list)  # for the voice gateway: "transfer", "hangup", ...


@dataclass(frozen=True)
class Turn:
    """One borrower message and what the conversation knows around it.

    What the turn knows does not change; what it says goes to ``reply``. A copy made with
    ``dataclasses.replace`` (the same message read another way) says into the same reply.
    """

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
    confidence: float = 1.0  # the classifier's, for the message's intent
    last_record: str | None = None  # what this conversation recorded last ("promise"), for corrections
    # The classifier's likeliest intents with their confidences, best first, without nlu_fallback.
    ranking: tuple[tuple[str, float], ...] = ()
    channel: str = "sms"  # or "voice": the gateway says which in the message's metadata
    reply: Reply = field(default_factory=Reply, compare=False, repr=False)

    @property
    def locked(self) -> bool:
        """Nothing may be disclosed in this conversation, whatever is answered."""
        return self.blocked or self.failures >= verification.MAX_ATTEMPTS

    def say(self, response: str, **values: Any) -> None:
        """Queue a response from the domain, in this conversation's language."""
        values.setdefault("bank_phone", self.services.settings.bank_phone)
        values.setdefault("agent_hours", self.services.settings.agent_hours)
        self.reply.said.append((response, self.language, values))

    def send_text(self, response: str, **values: Any) -> None:
        """Queue a response to go out by SMS (during a call: the payment link)."""
        values.setdefault("bank_phone", self.services.settings.bank_phone)
        self.reply.texts.append((response, self.language, values))

    def call_action(self, action: str) -> None:
        """On a call, ask the voice gateway to act: "keys_answer", "transfer", "hangup"."""
        self.reply.call_actions.append(action)

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


def mentions_visit(text: str) -> bool:
    return cues.says("visit", text)


def speaker_is_someone_else(text: str) -> bool:
    """The writer says who they are, and it is not the borrower."""
    return cues.says("speaker_is_someone_else", text)


def speaks_for_someone_else(text: str) -> bool:
    """The writer is not the borrower, or says the borrower cannot come to the phone."""
    return speaker_is_someone_else(text) or cues.says("borrower_away", text)


def claims_payment_made(text: str) -> bool:
    """The message says a payment was made ("already" outweighs "I want to")."""
    if not cues.says("paid", text):
        return False
    return not cues.says("meant", text) or cues.says("already", text)


def says_amount_is_wrong(text: str) -> bool:
    return cues.says("wrong_amount", text)


def says_cannot_pay(text: str) -> bool:
    return cues.says("not_paying", text)


def mentions_payment(text: str) -> bool:
    """The message speaks of paying, and not of being unable to."""
    return cues.says("pay", text) and not cues.says("not_paying", text)


def changes_promise(turn: Turn) -> bool:
    """The borrower moves the promise they made in this conversation to another day they name."""
    if turn.last_record != "promise" or not cues.says("change", turn.text) or mentions_visit(turn.text):
        return False
    day, impossible = named_date(turn)
    return day is not None or impossible


def is_correction(turn: Turn) -> bool:
    """The borrower says the bot misunderstood them.

    With nothing recorded, a clear dispute or complaint is what it says: "fees I never agreed to".
    """
    if cues.says("correction", turn.text):
        plainly_other = turn.intent in ("dispute_debt", "complain") and turn.confidence >= CLEAR_CONFIDENCE
        return turn.last_record is not None or not plainly_other
    return turn.last_record is not None and cues.says("correction_after_record", turn.text)


def _confidence_of(message: Mapping[str, Any]) -> float:
    return float((message.get("intent") or {}).get("confidence") or 0.0)


def _ranking_of(message: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple((r["name"], float(r.get("confidence") or 0.0)) for r in message.get("intent_ranking") or []
                 if r.get("name") and r["name"] != "nlu_fallback")


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
        confidence=_confidence_of(latest_message),
        last_record=slots.get("last_record"),
        ranking=_ranking_of(latest_message),
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
    return [("awaiting", questions.VERIFICATION), ("pending", pending or turn.intent or None)]


async def someone_else_on_the_phone(turn: Turn) -> list[SlotChange]:
    """Ask them to pass on the bank's number, nothing more; nothing is disclosed on this number for a day."""
    await turn.services.records.flag_number(turn.conversation_id, "third_party", stop_contact=False)
    await turn.services.records.block_disclosure(turn.conversation_id, "third_party")
    turn.say("utter_third_party")
    return [("verified_account", None), ("awaiting", None), ("pending", None)]


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
    instalments = catalog.counted(catalog.responses(), "utter_count_instalments", due.count, turn.language)
    if due.minimum_only:
        balance = statement_balance(turn.account, turn.today) or Decimal(0)
        turn.say("utter_balance_minimum", overdue_amount=turn.money(due.amount), overdue_instalments=instalments,
                 oldest_due=turn.date(due.oldest_due), statement_balance=turn.money(balance))
        return
    turn.say("utter_balance", overdue_amount=turn.money(due.amount), overdue_instalments=instalments,
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
    return [("awaiting", questions.PROMISE_DATE)]


def named_date(turn: Turn) -> tuple[date | None, bool]:
    """The date the message names, and whether it named an impossible one (parsed anew on each call)."""
    try:
        return find_date(turn.text[: verification.MAX_ANSWER_LENGTH], turn.language, turn.today), False
    except ImpossibleDate:
        return None, True


async def _promise(turn: Turn, day: date | None, impossible: bool, changed: bool = False) -> list[SlotChange]:
    """Store a promise for an allowed day; otherwise explain and ask for the date again.

    Args:
        changed: the promise replaces the one this conversation made (audited as a change).
    """
    if impossible:
        turn.say("utter_date_impossible")
        return [("awaiting", questions.PROMISE_DATE)]
    if day is None:
        return ask_promise_date(turn)
    first, last = promise_window(turn)
    if not first <= day <= last:
        turn.say("utter_promise_out_of_range", first_day=turn.date(first), last_day=turn.date(last))
        return [("awaiting", questions.PROMISE_DATE)]
    due = overdue(turn.account, turn.today)
    await turn.services.records.promise(turn.account.account_id, turn.conversation_id, day, due.amount,
                                        paid_before=total_paid(turn.account), changed=changed)
    turn.say("utter_promise_confirmed", overdue_amount=turn.money(due.amount), promise_date=turn.date(day))
    return [("awaiting", None), ("last_record", "promise")]


async def promise_on(turn: Turn, day: date) -> list[SlotChange]:
    """Store a promise for ``day`` (checked against the window)."""
    return await _promise(turn, day, impossible=False)


async def change_promise(turn: Turn) -> list[SlotChange]:
    """"Actually make it the 20th": the promise moves to the day named (checked against the window)."""
    day, impossible = named_date(turn)
    return await _promise(turn, day, impossible, changed=True)


def coming_day(turn: Turn) -> date | None:
    """The day after today, within the promise window, that the message names, if any."""
    day, _ = named_date(turn)
    first, last = promise_window(turn)
    return day if day is not None and first < day <= last else None  # "pay now" parses as today


def ask_what_the_day_is_for(turn: Turn, day: date) -> list[SlotChange]:
    """A day with nothing to say what it is for: ask rather than record a promise nobody made."""
    turn.say("utter_ask_date_meaning", day=turn.date(day))
    return [("awaiting", questions.DATE_MEANING), ("pending", day.isoformat())]


async def record_promise_from_text(turn: Turn) -> list[SlotChange]:
    """The borrower promises to pay: store the date the text names, or ask for one.

    A message without a word of paying that speaks of a visit, or that the classifier is unsure of,
    gets a question instead of a promise.
    """
    day, impossible = named_date(turn)
    unclear = not mentions_payment(turn.text) and (turn.confidence < CLEAR_CONFIDENCE or mentions_visit(turn.text))
    if unclear and day is not None and not impossible:
        return ask_what_the_day_is_for(turn, day)
    return await _promise(turn, day, impossible)


async def undo_last_record(turn: Turn) -> list[SlotChange]:
    """"I didn't say that": withdraw what this conversation last recorded, and say so."""
    if turn.last_record == "promise" and await turn.services.records.withdraw_promise(
            turn.account.account_id, turn.conversation_id):
        turn.say("utter_record_undone_promise")
    else:
        turn.say("utter_correction_nothing_recorded")
    return [*DONE, ("last_record", None)]


async def promise_if_dated(turn: Turn) -> list[SlotChange] | None:
    """The answer to "which date?": a dated reply is handled in full, anything else is not an answer."""
    day, impossible = named_date(turn)
    if day is None and not impossible:
        return None
    return await _promise(turn, day, impossible)


# What a message must say, besides its intent, for what it asks: "I get paid friday" is no paid claim,
# "I need more days, my husband lost his job" is the borrower speaking, and "I'm not giving out my
# birthday" asks no one to stop.
_WORDING: dict[str, Callable[[str], bool]] = {
    "already_paid": claims_payment_made,
    "third_party": speaks_for_someone_else,
    "stop_contact": lambda text: cues.says("stop_contact", text),
}


def words_say(intent: str, text: str) -> bool:
    """The words say what the intent asks for (intents without a rule: any words do)."""
    rule = _WORDING.get(intent)
    return bool(text) if rule is None else rule(text)
# Kept in ``pending`` while the borrower is asked who they are: confirm this record once verified.
UNSURE = "unsure:"


def record_is_unclear(turn: Turn, record: str) -> bool:
    """The classifier is unsure of the message, or its words do not say what the record needs.

    A message the borrower picked as their meaning (no text of its own) is clear.
    """
    if turn.confidence < CLEAR_CONFIDENCE:
        return True
    return bool(turn.text) and not words_say(record, turn.text)


def confirm_unclear_record(turn: Turn, record: str) -> list[SlotChange] | None:
    """Ask before a dispute or an "already paid" claim that is unclear; None when it is clear."""
    if not record_is_unclear(turn, record):
        return None
    return ask_to_confirm(turn, record)


def ask_to_confirm(turn: Turn, record: str) -> list[SlotChange]:
    turn.say(f"utter_ask_confirm_{record}")
    return [("awaiting", questions.RECORD_CONFIRM), ("pending", record)]


def offer_person(turn: Turn, pending: str) -> list[SlotChange]:
    """Ask whether a colleague should take over; a yes queues the conversation for ``pending``'s reason."""
    turn.say("utter_offer_person")
    return [("awaiting", questions.HANDOFF_OFFER), ("pending", pending)]


def opt_out_source(text: str) -> str:
    """The source of an opt-out asked for in conversation: "representative" when the borrower names one."""
    return "representative" if cues.says("representative", text) else "conversation"


async def opt_out(turn: Turn) -> None:
    """Record the opt-out the borrower asked for in conversation (every medium), and say so."""
    await turn.services.records.opt_out(turn.conversation_id, opt_out_source(turn.text))
    turn.say("utter_stop_contact")


async def hand_off(turn: Turn, reason: str) -> list[SlotChange]:
    """Queue the conversation for an agent and say when to expect a reply."""
    await turn.services.records.hand_off(turn.conversation_id, turn.account.account_id, reason)
    if reason == "request_human":
        turn.call_action("transfer")
    turn.say(f"utter_noted_{reason}")
    turn.say("utter_handoff")
    return [("awaiting", None)]
