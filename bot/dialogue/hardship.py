"""A borrower who cannot pay in full: why, what the policy allows, and their choice.

The bot listens to the reason first, then offers only what the product's policy
(policy/plans.yml) allows for this account, each schedule computed exactly. Nothing
is stored before the borrower says yes to one exact offer; the offers shown are
kept in Redis so that "2" or "yes" accepts what they saw.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.contact import sms
from bot.core import catalog
from bot.dialogue import cues, questions
from bot.dialogue.choices import read_choice_number
from bot.dialogue.conversation import DONE, SlotChange, Turn, named_date, offer_person, refuse_or_ask_verification
from bot.dialogue.family import ask_consent_once
from bot.domain.arrangements import REASONS, ArrangementRefused, status
from bot.domain.ledger import overdue
from bot.domain.plans import (
    Offer,
    ProductPolicy,
    cn_value,
    days_past_due,
    grace_offer,
    plan_offers,
    read_amount,
    shortest_affordable,
)

HARDSHIP_INTENTS = {"request_plan": "plan", "inform_hardship": "plan", "request_extension": "grace"}
# Replies that may answer our questions; anything else goes to its own action.
ANSWER_INTENTS = {"inform", "nlu_fallback", "affirm", "deny", "out_of_scope", "request_plan",
                  "request_extension", "inform_hardship"}
# Asked again within this many days, a borrower is not asked for the reason again.
REASON_KEPT_DAYS = 30

# Checked in this order: "my son is ill" is illness, "family business" business.
_REASON_WORDS = (
    ("job_loss", r"失业|裁员|被裁|没(?:了)?工作|丢了工作|工作丢|找不到工作|倒闭|辞退|开除|"
                 r"\b(?:lost (?:my |his |her |their |our |the )?(?:job|work)|laid off|layoffs?|unemployed|fired|"
                 r"no job|out of work|redundan\w*|let go|jobless)\b"),
    ("illness", r"生病|病了|得病|住院|手术|医院|受伤|车祸|治疗|\b(?:ill(?:ness)?|sick|hospital\w*|surgery|cancer|"
                r"injur\w*|accident|medical|treatment|chemo)\b"),
    ("business", r"生意|亏本|亏损|亏了|赔了|经营|店铺|门店|开店|店关|客户|货款|\b(?:business|shop|store|customers|"
                 r"revenue|sales|restaurant)\b"),
    ("family_emergency", r"家里出事|家里有事|家人|去世|过世|父亲|母亲|爸爸|妈妈|孩子|老人|老婆|老公|\b(?:family|"
                         r"passed away|funeral|died|mom|mum|dad|wife|husband|kids?|child(?:ren)?|baby)\b"),
    ("other", r"离婚|被骗|其他|其它|别的|\b(?:divorce\w*|scam\w*|other|something else)\b"),
)
# The numbers utter_ask_hardship_reason lists, in the order of REASONS.
_REASON_BY_NUMBER = {str(n): r for n, r in enumerate(REASONS, 1)}
_EN_COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
              "eleven": 11, "twelve": 12, "eighteen": 18, "twenty four": 24, "twenty-four": 24, "thirty six": 36,
              "thirty-six": 36}
_COUNT = re.compile(r"(\d{1,2}|[一二两三四五六七八九十]{1,3}|" + "|".join(sorted(_EN_COUNTS, key=len, reverse=True))
                    + r")\s*-?\s*(?:个月|期|months?|instal+ments?|payments?|mos?\b)")


def read_reason(text: str) -> str | None:
    """Which of the known reasons the words give, if any."""
    lowered = text.lower()
    return next((reason for reason, words in _REASON_WORDS if re.search(words, lowered)), None)


def read_reason_answer(text: str, words: str | None) -> str:
    """The answer to "why?": a listed number, recognised words, or "other".

    Args:
        words: what ``read_reason(text)`` gave, which the caller has already.
    """
    stripped = text.strip().strip(".。)）")
    return _REASON_BY_NUMBER.get(stripped) or words or "other"


def read_choice(text: str, offers: list[Offer]) -> Offer | None:
    """The offer picked: by its number in the list ("2", "the second one") or its length ("6个月", "12")."""
    number = read_choice_number(text, len(offers))
    if number:
        return offers[number - 1]
    counted = _COUNT.search(text.lower())
    bare = text.strip().strip(".。")
    if counted:
        value = counted.group(1)
        count = int(value) if value.isdigit() else _EN_COUNTS.get(value) or cn_value(value)
    elif bare.isdigit() and int(bare) > len(offers):  # "12": beyond the list, so a number of months
        count = int(bare)
    else:
        return None
    return next((o for o in offers if o.count == count), None)


def _policy(turn: Turn) -> ProductPolicy:
    return turn.services.plan_policy[turn.account.product]


@dataclass(frozen=True)
class Request:
    """What the borrower asked for and said with it, kept in ``pending`` while we ask who they are or why."""

    want: str  # "plan" or "grace"
    reason: str | None = None
    monthly: Decimal | None = None
    until: date | None = None

    def encode(self) -> str:
        return ":".join(["hardship", self.want, self.reason or "", str(self.monthly or ""),
                         self.until.isoformat() if self.until else ""])

    @classmethod
    def decode(cls, pending: str) -> Request:
        _, want, reason, monthly, until = (pending.split(":") + [""] * 5)[:5]
        return cls(want or "plan", reason or None, Decimal(monthly) if monthly else None,
                   date.fromisoformat(until) if until else None)


def read_request(turn: Turn, want: str) -> Request:
    """What was asked for: a story told with "a few more days" asks for time, whatever its intent."""
    day, _ = named_date(turn)
    more_time, plan = cues.says("more_time", turn.text), cues.says("plan_words", turn.text)
    if more_time != plan:  # the words say which, whatever the intent: "a payment plan? my mom passed away"
        want = "grace" if more_time else "plan"
    return Request(want, read_reason(turn.text), read_amount(turn.text, monthly_only=True),
                   day if day and day > turn.today else None)


async def start(turn: Turn, want: str) -> list[SlotChange]:
    """The borrower asked for a plan or more time, or said they cannot pay."""
    request = read_request(turn, want)
    if not turn.verified:
        return refuse_or_ask_verification(turn, pending=request.encode())
    return await _begin(turn, request, turn.text)


async def resume(turn: Turn, pending: str) -> list[SlotChange]:
    """Go on with the request made before verification (the message now is the verification answer)."""
    return await _begin(turn, Request.decode(pending), said="")


async def _begin(turn: Turn, request: Request, said: str) -> list[SlotChange]:
    if overdue(turn.account, turn.today).count == 0:
        turn.say("utter_no_overdue")
        return list(DONE)
    current = await turn.services.arrangements.current(turn.account.account_id)
    if current and status(current, turn.account, turn.today) == "active":
        _say_existing(turn, Offer.from_record(current["offer"]))
        return offer_person(turn, "request_plan")
    if request.reason:
        await _record_reason(turn, request.reason, said)
    elif not await _reason_known(turn):
        turn.say("utter_ask_hardship_reason")
        turn.call_action("keys_answer")
        return [("awaiting", questions.HARDSHIP_REASON), ("pending", request.encode())]
    return await _offer(turn, request)


def _say_existing(turn: Turn, offer: Offer) -> None:
    upcoming = [i for i in offer.schedule if i.due >= turn.today] or list(offer.schedule[-1:])
    turn.say("utter_arrangement_exists", next_amount=turn.money(upcoming[0].amount),
             next_due=turn.date(upcoming[0].due))


async def _reason_known(turn: Turn) -> bool:
    record = await turn.services.arrangements.reason(turn.account.account_id)
    return record is not None and record["at"] > time.time() - REASON_KEPT_DAYS * 86400


async def _record_reason(turn: Turn, reason: str, said: str) -> None:
    await turn.services.arrangements.record_reason(turn.account.account_id, turn.conversation_id, reason, said)
    turn.say("utter_hardship_noted")


async def answer_reason(turn: Turn) -> list[SlotChange] | None:
    """The answer to "why can't you pay?": a listed number or words, unknown ones as "other"; no leaves."""
    reason = read_reason(turn.text)
    if turn.intent not in ANSWER_INTENTS and not reason:
        return None
    if turn.intent == "deny" and not reason:
        turn.say("utter_arrangement_declined")
        return list(DONE)
    request = Request.decode(turn.pending or "")
    await _record_reason(turn, read_reason_answer(turn.text, reason), turn.text)
    monthly = read_amount(turn.text) or request.monthly
    return await _offer(turn, dataclasses.replace(request, monthly=monthly))


async def _offer(turn: Turn, request: Request) -> list[SlotChange]:
    if request.want == "grace":
        return await offer_grace(turn, request.until)
    return await offer_plans(turn, request.monthly)


async def offer_plans(turn: Turn, monthly: Decimal | None) -> list[SlotChange]:
    """List the plans the policy allows, or the shortest one within what the borrower can pay a month."""
    due = overdue(turn.account, turn.today)
    used = await turn.services.arrangements.accepted_last_year(turn.account.account_id, "plan")
    offers = plan_offers(_policy(turn), due.amount, turn.account.currency, turn.today, used)
    if not offers:
        turn.say("utter_no_plan_available")
        return offer_person(turn, "request_plan")
    if monthly is None:
        return await _list_offers(turn, offers)
    fit = shortest_affordable(offers, monthly)
    if fit is None:
        lowest = min(o.largest for o in offers)
        turn.say("utter_plan_none_fits", monthly=turn.money(monthly), lowest=turn.money(lowest))
        return offer_person(turn, "request_plan")
    await turn.services.arrangements.keep_offers(turn.conversation_id, [fit])
    turn.say("utter_plan_fits", monthly=turn.money(monthly))
    return _ask_to_confirm(turn, fit, 0)


async def _list_offers(turn: Turn, offers: list[Offer]) -> list[SlotChange]:
    await turn.services.arrangements.keep_offers(turn.conversation_id, offers)
    turn.say("utter_plan_options", overdue_amount=turn.money(overdue(turn.account, turn.today).amount))
    for number, offer in enumerate(offers, start=1):
        turn.say("utter_plan_option", number=number, count=offer.count, regular=turn.money(offer.regular),
                 first_amount=turn.money(offer.schedule[0].amount), first_due=turn.date(offer.first_due),
                 total=turn.money(offer.total), charges=turn.money(offer.fee + offer.interest))
    turn.say("utter_ask_plan_choice")
    turn.call_action("keys_answer")
    return [("awaiting", questions.PLAN_CHOICE), ("pending", None)]


def _ask_to_confirm(turn: Turn, offer: Offer, index: int) -> list[SlotChange]:
    turn.say("utter_plan_summary", count=offer.count, first_amount=turn.money(offer.schedule[0].amount),
             first_due=turn.date(offer.first_due), regular=turn.money(offer.regular),
             last_amount=turn.money(offer.schedule[-1].amount), last_due=turn.date(offer.last_due),
             total=turn.money(offer.total), charges=turn.money(offer.fee + offer.interest))
    turn.say("utter_ask_plan_confirm")
    return [("awaiting", questions.PLAN_CONFIRM), ("pending", str(index))]


async def answer_choice(turn: Turn) -> list[SlotChange] | None:
    """Which plan: a number, a count of months, an amount a month, or a change of mind."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    offers = await turn.services.arrangements.shown_offers(turn.conversation_id)
    changed = await _change_of_mind(turn, offers)
    if changed is not None:
        return changed
    chosen = read_choice(turn.text, offers)
    if chosen is None:
        turn.say("utter_ask_plan_choice")
        return []
    return _ask_to_confirm(turn, chosen, offers.index(chosen))


async def _change_of_mind(turn: Turn, offers: list[Offer]) -> list[SlotChange] | None:
    """Replies that leave the question: no, more time instead, an amount a month, offers expired."""
    if turn.intent == "deny" and read_choice(turn.text, offers) is None:
        turn.say("utter_arrangement_declined")
        return list(DONE)
    if turn.intent == "request_extension":
        return await offer_grace(turn, named_date(turn)[0])
    monthly = read_amount(turn.text)
    if monthly is not None or not offers:
        return await offer_plans(turn, monthly)
    return None


async def answer_confirm(turn: Turn) -> list[SlotChange] | None:
    """Yes stores the offer; no, another choice or an amount goes back to the offers."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    offers = await turn.services.arrangements.shown_offers(turn.conversation_id)
    index = int(turn.pending) if turn.pending and turn.pending.isdigit() else 0
    chosen = read_choice(turn.text, offers)
    if chosen is not None and offers.index(chosen) != index:  # "ok, make it 12 then": that one, confirmed again
        return _ask_to_confirm(turn, chosen, offers.index(chosen))
    if turn.intent == "affirm" and index < len(offers):
        return await _accept(turn, offers[index])
    if turn.intent == "deny" and chosen is None:
        return await offer_plans(turn, None)  # "no": choose again, from everything allowed
    changed = await _change_of_mind(turn, offers)
    if changed is not None:
        return changed
    turn.say("utter_ask_plan_confirm")
    return []


async def offer_grace(turn: Turn, until: date | None) -> list[SlotChange]:
    """Offer the policy's grace period (to the day the borrower named, if allowed)."""
    policy, due = _policy(turn), overdue(turn.account, turn.today)
    dpd = days_past_due(turn.account, turn.today)
    used = await turn.services.arrangements.accepted_last_year(turn.account.account_id, "grace")
    longest = grace_offer(policy, due.amount, turn.account.currency, dpd, turn.today, used)
    if longest is None:
        turn.say("utter_no_grace")
        return await offer_plans(turn, None)
    offer = grace_offer(policy, due.amount, turn.account.currency, dpd, turn.today, used, until=until)
    if offer is None:  # the day named is beyond what the policy allows: offer the most it does
        turn.say("utter_grace_out_of_range", last_day=turn.date(longest.first_due))
        offer = longest
    await turn.services.arrangements.keep_offers(turn.conversation_id, [offer])
    turn.say("utter_grace_offer", days=(offer.first_due - turn.today).days, amount=turn.money(offer.total),
             until=turn.date(offer.first_due))
    return [("awaiting", questions.GRACE_CONFIRM), ("pending", "0")]


async def answer_grace(turn: Turn) -> list[SlotChange] | None:
    """Yes takes the grace period; another day is offered if allowed; a plan or no leaves it.

    A day named here is the day asked for, also when it reads as a promise ("could i have until the 19th").
    """
    day, impossible = named_date(turn)
    if turn.intent not in ANSWER_INTENTS and not (turn.intent == "promise_to_pay" and (day or impossible)):
        return None
    offers = await turn.services.arrangements.shown_offers(turn.conversation_id)
    if impossible:
        turn.say("utter_date_impossible")
        return []
    if day is not None and day > turn.today:
        return await offer_grace(turn, day)
    if turn.intent == "affirm" and offers:
        return await _accept(turn, offers[0])
    if turn.intent == "deny":
        turn.say("utter_arrangement_declined")
        return list(DONE)
    monthly = read_amount(turn.text)
    if turn.intent == "request_plan" or monthly is not None:
        return await offer_plans(turn, monthly)
    turn.say("utter_ask_grace_confirm")
    return []


async def _accept(turn: Turn, offer: Offer) -> list[SlotChange]:
    policy = _policy(turn)
    limit = policy.plans_per_year if offer.kind == "plan" else policy.grace_per_year
    try:
        await turn.services.arrangements.accept(turn.account, turn.conversation_id, offer, turn.today,
                                                turn.channel, limit)
    except ArrangementRefused:
        turn.say("utter_arrangement_failed")
        return offer_person(turn, "request_plan")
    if offer.kind == "grace":
        turn.say("utter_grace_accepted", amount=turn.money(offer.total), until=turn.date(offer.first_due))
    else:
        turn.say("utter_plan_accepted", count=offer.count, total=turn.money(offer.total))
        _send_schedule(turn, offer)
    return await ask_consent_once(turn)


def _send_schedule(turn: Turn, offer: Offer) -> None:
    """Every due date by SMS: in the reply by SMS, as texts during a call."""
    lines = [catalog.render(catalog.responses(), "utter_schedule_line", turn.language, number=n,
                            due=turn.date(i.due), amount=turn.sms_money(i.amount))
             for n, i in enumerate(offer.schedule, start=1)]
    for chunk in sms.pack(lines):
        if turn.channel == "voice":
            turn.send_text("utter_schedule", schedule=chunk)
        else:
            turn.say("utter_schedule", schedule=chunk)
    if turn.channel == "voice":
        turn.say("utter_schedule_texted")
