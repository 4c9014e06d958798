"""A borrower who cannot pay in full: why, what the policy allows, and their choice.

The bot listens to the reason first, then offers only what the product's policy
(policy/plans.yml) allows for this account, each schedule computed exactly. Nothing
is stored before the borrower says yes to one exact offer; the offers shown are
kept in Redis so that "2" or "yes" accepts what they saw.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from decimal import Decimal

from bot import sms
from bot.arrangements import ArrangementRefused, status
from bot.conversation import SlotChange, Turn, named_date, offer_person
from bot.family import ask_consent_once
from bot.ledger import overdue
from bot.plans import (
    Offer,
    ProductPolicy,
    days_past_due,
    grace_offer,
    max_grace_days,
    plan_offers,
    read_amount,
    shortest_affordable,
)

# Replies that may answer our questions; anything else goes to its own action.
ANSWER_INTENTS = {"inform", "nlu_fallback", "affirm", "deny", "out_of_scope", "request_plan",
                  "request_extension", "inform_hardship", "promise_to_pay"}
# Asked again within this many days, a borrower is not asked for the reason again.
REASON_KEPT_DAYS = 30

_REASON_WORDS = (
    ("job_loss", ("失业", "裁员", "被裁", "没工作", "没了工作", "丢了工作", "工作丢", "找不到工作", "倒闭", "辞退",
                  "开除", "lost my job", "lost job", "laid off", "layoff", "unemployed", "fired", "no job",
                  "out of work", "redundan", "let go", "lost work")),
    ("illness", ("病", "住院", "手术", "医院", "受伤", "车祸", "ill", "sick", "hospital", "surgery", "cancer",
                 "injur", "accident", "medical", "treatment")),
    ("business", ("生意", "店", "亏", "经营", "客户", "货款", "business", "shop", "store", "customers", "revenue",
                  "sales", "restaurant", "company is struggling")),
    ("family_emergency", ("家里", "家人", "去世", "父亲", "母亲", "爸", "妈", "孩子", "老人", "老婆", "老公", "family",
                          "passed away", "funeral", "died", "my mom", "my dad", "my wife", "my husband", "kid",
                          "child", "baby")),
    ("other", ("离婚", "被骗", "其他", "其它", "别的", "divorce", "scam", "other", "something else")),
)
_REASON_BY_NUMBER = {"1": "job_loss", "2": "illness", "3": "business", "4": "family_emergency", "5": "other"}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_CHOICE_NUMBER = re.compile(r"^\D{0,12}?([1-9])\D{0,12}$")
_ORDINAL = re.compile(r"(first|second|third|fourth)|第\s*([一二两三四1-4])")
_COUNT = re.compile(r"(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*(?:个月|期|months?|instal+ments?|payments?|mo\b)")
_CN_COUNTS = {"三": 3, "六": 6, "九": 9, "十二": 12, "二十四": 24, "十八": 18, "两": 2, "二": 2, "四": 4}


def read_reason(text: str) -> str | None:
    """Which of the known reasons the words give, if any."""
    lowered = text.lower()
    for reason, words in _REASON_WORDS:
        if any(word in lowered for word in words):
            return reason
    return None


def read_reason_answer(text: str) -> str:
    """The answer to "why?": a listed number, recognised words, or "other"."""
    stripped = text.strip().strip(".。)）")
    return _REASON_BY_NUMBER.get(stripped) or read_reason(text) or "other"


def read_choice(text: str, offers: list[Offer]) -> Offer | None:
    """The offer the borrower picked: by its number in the list, "the second one", or "6 months"."""
    lowered = text.lower().strip()
    counted = _COUNT.search(lowered)
    if counted:
        value = counted.group(1)
        count = int(value) if value.isdigit() else _CN_COUNTS.get(value)
        return next((o for o in offers if o.count == count), None)
    number = read_choice_number(text, len(offers))
    return offers[number - 1] if number else None


def read_choice_number(text: str, choices: int) -> int | None:
    """The number of the listed option picked: "2", "option 2", "the second one", "第二个"."""
    lowered = text.lower().strip()
    ordinal = _ORDINAL.search(lowered)
    number = _CHOICE_NUMBER.match(lowered)
    if ordinal:
        word = ordinal.group(1) or ordinal.group(2)
        index = _ORDINALS.get(word) or int(word)
    else:
        index = int(number.group(1)) if number else 0
    return index if 0 < index <= choices else None


def _policy(turn: Turn) -> ProductPolicy:
    return turn.services.plan_policy[turn.account.product]


async def start(turn: Turn, want: str) -> list[SlotChange]:
    """The borrower asked for a plan or more time, or said they cannot pay."""
    if overdue(turn.account, turn.today).count == 0:
        turn.say("utter_no_overdue")
        return [("awaiting", None), ("pending", None)]
    current = await turn.services.arrangements.current(turn.account.account_id)
    if current and status(current, turn.account, turn.today) == "active":
        _say_existing(turn, Offer.from_record(current["offer"]))
        return offer_person(turn, "request_plan")
    amount = read_amount(turn.text)
    reason = read_reason(turn.text)
    if reason:
        await _record_reason(turn, reason)
    elif not await _reason_known(turn):
        turn.say("utter_ask_hardship_reason")
        turn.call_actions.append("keys_answer")
        return [("awaiting", "hardship_reason"), ("pending", want if amount is None else f"{want}:{amount}")]
    return await _offer(turn, want, amount)


def _say_existing(turn: Turn, offer: Offer) -> None:
    upcoming = [i for i in offer.schedule if i.due >= turn.today] or list(offer.schedule[-1:])
    turn.say("utter_arrangement_exists", next_amount=turn.money(upcoming[0].amount),
             next_due=turn.date(upcoming[0].due))


async def _reason_known(turn: Turn) -> bool:
    record = await turn.services.arrangements.reason(turn.account.account_id)
    return record is not None and record["at"] > time.time() - REASON_KEPT_DAYS * 86400


async def _record_reason(turn: Turn, reason: str) -> None:
    await turn.services.arrangements.record_reason(turn.account.account_id, turn.conversation_id, reason, turn.text)
    turn.say("utter_hardship_noted")


async def answer_reason(turn: Turn) -> list[SlotChange] | None:
    """The answer to "why can't you pay?"; any reply in the flow counts, unknown ones as "other"."""
    if turn.intent not in ANSWER_INTENTS and not read_reason(turn.text):
        return None
    want, _, amount = (turn.pending or "plan").partition(":")
    await _record_reason(turn, read_reason_answer(turn.text))
    stated = read_amount(turn.text)
    return await _offer(turn, want, stated if stated is not None else (Decimal(amount) if amount else None))


async def _offer(turn: Turn, want: str, amount: Decimal | None) -> list[SlotChange]:
    if want == "grace":
        return await offer_grace(turn, named_date(turn)[0])
    return await offer_plans(turn, amount)


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
    turn.call_actions.append("keys_answer")
    return [("awaiting", "plan_choice"), ("pending", None)]


def _ask_to_confirm(turn: Turn, offer: Offer, index: int) -> list[SlotChange]:
    last = offer.schedule[-1]
    turn.say("utter_plan_summary", count=offer.count, first_amount=turn.money(offer.schedule[0].amount),
             first_due=turn.date(offer.first_due), regular=turn.money(offer.regular),
             last_amount=turn.money(last.amount), last_due=turn.date(last.due), total=turn.money(offer.total),
             charges=turn.money(offer.fee + offer.interest))
    turn.say("utter_ask_plan_confirm")
    return [("awaiting", "plan_confirm"), ("pending", str(index))]


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
        return [("awaiting", None), ("pending", None)]
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
    if turn.intent == "affirm" and index < len(offers):
        return await _accept(turn, offers[index])
    if turn.intent == "deny" and read_choice(turn.text, offers) is None:
        return await offer_plans(turn, None)  # "no": choose again, from everything allowed
    changed = await _change_of_mind(turn, offers)
    if changed is not None:
        return changed
    chosen = read_choice(turn.text, offers)
    if chosen is not None:
        return _ask_to_confirm(turn, chosen, offers.index(chosen))
    turn.say("utter_ask_plan_confirm")
    return []


async def offer_grace(turn: Turn, until: date | None) -> list[SlotChange]:
    """Offer the policy's grace period (to the day the borrower named, if allowed)."""
    policy, due = _policy(turn), overdue(turn.account, turn.today)
    dpd = days_past_due(turn.account, turn.today)
    used = await turn.services.arrangements.accepted_last_year(turn.account.account_id, "grace")
    most = max_grace_days(policy, dpd)
    if most == 0 or used >= policy.grace_per_year:
        turn.say("utter_no_grace")
        return await offer_plans(turn, None)
    offer = grace_offer(policy, due.amount, turn.account.currency, dpd, turn.today, used, until=until)
    if offer is None:  # the day named is beyond what the policy allows
        turn.say("utter_grace_out_of_range", last_day=turn.date(turn.today + timedelta(days=most)))
        offer = grace_offer(policy, due.amount, turn.account.currency, dpd, turn.today, used)
    assert offer is not None
    await turn.services.arrangements.keep_offers(turn.conversation_id, [offer])
    turn.say("utter_grace_offer", days=(offer.first_due - turn.today).days, amount=turn.money(offer.total),
             until=turn.date(offer.first_due))
    return [("awaiting", "grace_confirm"), ("pending", "0")]


async def answer_grace(turn: Turn) -> list[SlotChange] | None:
    """Yes takes the grace period; another day is offered if allowed; a plan or no leaves it."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    offers = await turn.services.arrangements.shown_offers(turn.conversation_id)
    day, impossible = named_date(turn)
    if impossible:
        turn.say("utter_date_impossible")
        return []
    if day is not None and day > turn.today:
        return await offer_grace(turn, day)
    if turn.intent == "affirm" and offers:
        return await _accept(turn, offers[0])
    if turn.intent == "deny":
        turn.say("utter_arrangement_declined")
        return [("awaiting", None), ("pending", None)]
    if turn.intent == "request_plan" or read_amount(turn.text) is not None:
        return await offer_plans(turn, read_amount(turn.text))
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
    lines = [f"{n}. {turn.date(i.due)} {turn.sms_money(i.amount)}" for n, i in enumerate(offer.schedule, start=1)]
    for chunk in sms.pack(lines):
        if turn.channel == "voice":
            turn.send_text("utter_schedule", schedule=chunk)
        else:
            turn.say("utter_schedule", schedule=chunk)
    if turn.channel == "voice":
        turn.say("utter_schedule_texted")
