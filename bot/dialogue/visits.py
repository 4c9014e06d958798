"""Booking a verification visit (预约 → 上门核实) in the conversation, and the day-before reminder.

The bot says why a visit is needed and what to prepare, asks where (home or
workplace) and records the address only after the borrower agrees to it, then
offers up to three slots near the days and times they name. Slots are held
briefly while the borrower decides and booked atomically (bot/domain/booking.py).
What the borrower told us so far is kept sealed in a draft for the hour.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.contact.outbound import Sender, Sent
from bot.core import catalog, keys
from bot.core.dates import ImpossibleDate
from bot.core.formatting import long_date, short_time
from bot.dialogue import questions
from bot.dialogue.choices import read_choice_number
from bot.dialogue.conversation import DONE, SlotChange, Turn, offer_person, record_consent_answer
from bot.domain.booking import Booking, Slot
from bot.domain.consent import read_phone
from bot.domain.ledger import Account
from bot.domain.visit_times import Preference, read_preference
from bot.services import Services

ANSWER_INTENTS = {"inform", "nlu_fallback", "affirm", "deny", "out_of_scope", "book_visit", "reschedule_visit"}
DRAFT_SECONDS = 3600
_HOME = re.compile(r"家|住|宅|小区|home|house|apartment|flat|my place", re.IGNORECASE)
_WORK = re.compile(r"单位|公司|办公|上班|工作|厂|店|work|office|job|company|shop|store", re.IGNORECASE)
_ANYTIME = re.compile(r"都(可以|行)|随时|什么时候都|都方便|any ?time|whenever|any day|don'?t mind", re.IGNORECASE)
# Intents an address may be classified as ("my mum's flat, 3 Oak Road" can look like a third party).
MAX_WISH = 200  # characters of the first message kept for its day and time
ADDRESS_INTENTS = {"inform", "nlu_fallback", "out_of_scope", "book_visit", "reschedule_visit", "third_party"}
# An answer that reads as an address is one whatever the classifier made of it ("88 Pine Ave" as goodbye).
_STREET = re.compile(r"\d+\s+\w+.*\b(?:st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|way|ct|court|"
                     r"pl|place|pkwy|hwy|suite|ste|apt|unit|floor)\b\.?|\b\d{5}(?:-\d{4})?\b", re.I)
_CN_ADDRESS = re.compile(r"(?:省|市|区|县|镇|乡|村).*?(?:路|街|道|巷|弄|号|楼|室|大厦|园|中心)")


def reads_as_address(text: str) -> bool:
    return bool(_STREET.search(text) or _CN_ADDRESS.search(text))


def read_place(text: str) -> str | None:
    """"home" or "work", when the reply says one of them and not both."""
    home, work = bool(_HOME.search(text)), bool(_WORK.search(text))
    return "home" if home and not work else "work" if work and not home else None


async def _draft(turn: Turn) -> dict[str, Any]:
    sealed = await turn.services.redis.get(keys.visit_draft(turn.conversation_id))
    return turn.services.vault.open(sealed) if sealed else {}


async def _save_draft(turn: Turn, **values: Any) -> dict[str, Any]:
    draft = {**await _draft(turn), **values}
    await turn.services.redis.set(keys.visit_draft(turn.conversation_id), turn.services.vault.seal(draft),
                                  ex=DRAFT_SECONDS)
    return draft


def slot_when(slot: Slot, account: Account, language: str) -> dict[str, str]:
    """The slot's day and time where the borrower lives, as the visit responses' placeholders."""
    local = slot.start.astimezone(ZoneInfo(account.timezone))
    return {"visit_date": long_date(local.date(), language), "visit_time": short_time(local, language)}


async def start(turn: Turn, intent: str) -> list[SlotChange]:
    """A verified borrower asked to book, move, cancel or understand a visit."""
    booking = await turn.services.bookings.booking_for(turn.account.account_id)
    if intent == "cancel_visit":
        return await _cancel(turn, booking)
    if intent == "ask_visit_purpose":
        turn.say("utter_visit_purpose")
        if booking:
            turn.say("utter_visit_already_booked", **slot_when(booking.slot, turn.account, turn.language))
            return list(DONE)
    elif booking:
        return await _reschedule(turn, booking)
    if not turn.services.bookings.serves(turn.account.region):
        turn.say("utter_visit_unavailable")
        return offer_person(turn, "book_visit")
    if intent != "ask_visit_purpose":
        turn.say("utter_visit_purpose")
    return await _ask_place_unless_said(turn)


async def _ask_place_unless_said(turn: Turn) -> list[SlotChange]:
    """"Can someone visit me at home next saturday morning?": the place and the time are kept, not asked again."""
    place = read_place(turn.text)
    wish = _quiet_wish(turn)
    if wish:
        await _save_draft(turn, wish=turn.text[:MAX_WISH])
    if place is None:
        turn.say("utter_ask_visit_place")
        return [("awaiting", questions.VISIT_PLACE), ("pending", None)]
    await _save_draft(turn, place=place, language=turn.language)
    turn.say(f"utter_ask_address_consent_{place}")
    return [("awaiting", questions.VISIT_ADDRESS_CONSENT), ("pending", place)]


def _quiet_wish(turn: Turn) -> Preference | None:
    """The days and times the message names, if any (an impossible date is asked about at the time step)."""
    try:
        return read_preference(turn.text, turn.language, turn.today) or None
    except ImpossibleDate:
        return None


async def _cancel(turn: Turn, booking: Booking | None) -> list[SlotChange]:
    if booking is None:
        turn.say("utter_no_visit_booked")
        return list(DONE)
    await turn.services.bookings.cancel(turn.account.account_id)
    turn.say("utter_visit_cancelled", **slot_when(booking.slot, turn.account, turn.language))
    return list(DONE)


async def _reschedule(turn: Turn, booking: Booking) -> list[SlotChange]:
    """Keep the place and address of the booking; offer slots for the day named, or ask for one."""
    await _save_draft(turn, **booking.details)
    turn.say("utter_visit_already_booked", **slot_when(booking.slot, turn.account, turn.language))
    preference = _wish(turn)
    if preference:
        return await offer_slots(turn, preference)
    if preference is None:
        return []
    turn.say("utter_ask_visit_time")
    return [("awaiting", questions.VISIT_TIME), ("pending", None)]


def _wish(turn: Turn) -> Preference | None:
    """The days and times the message names (empty when none), or None after saying a date is impossible."""
    try:
        return read_preference(turn.text, turn.language, turn.today)
    except ImpossibleDate:
        turn.say("utter_date_impossible")
        return None


async def answer_place(turn: Turn) -> list[SlotChange] | None:
    """Home or workplace; then ask whether we may record that address."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    place = read_place(turn.text)
    if place is None:
        if turn.intent == "deny":
            turn.say("utter_visit_declined")
            return list(DONE)
        turn.say("utter_ask_visit_place")
        return []
    await _save_draft(turn, place=place, language=turn.language)
    turn.say(f"utter_ask_address_consent_{place}")
    return [("awaiting", questions.VISIT_ADDRESS_CONSENT), ("pending", place)]


async def answer_address_consent(turn: Turn) -> list[SlotChange] | None:
    """Yes records the consent (with its wording) and collects the address; no stores nothing."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    if turn.intent not in ("affirm", "deny"):
        turn.say(f"utter_ask_address_consent_{turn.pending or 'home'}")
        return []
    place = turn.pending if turn.pending in ("home", "work") else "home"
    status = await record_consent_answer(turn, "visit_address", f"utter_ask_address_consent_{place}")
    if status == "declined":
        turn.say("utter_visit_needs_address")
        return offer_person(turn, "book_visit")
    if place == "home" and turn.account.address:
        turn.say("utter_confirm_address_on_file", address=turn.account.address)
    else:
        turn.say(f"utter_ask_visit_address_{place}")
    return [("awaiting", questions.VISIT_ADDRESS), ("pending", place)]


async def answer_address(turn: Turn) -> list[SlotChange] | None:
    """The address typed (any phone number in it left out), or yes to the one on file; no leaves."""
    on_file = turn.account.address if turn.pending == "home" else ""
    if turn.intent == "deny":
        turn.say("utter_visit_declined")
        return list(DONE)
    if turn.intent == "affirm" and on_file:
        address = on_file
    elif turn.intent in ADDRESS_INTENTS or reads_as_address(turn.text):
        found = read_phone(turn.text)
        address = (found[1] if found else turn.text).strip()
    else:
        return None
    if len(address) < 5:
        turn.say(f"utter_ask_visit_address_{turn.pending or 'home'}")
        return []
    draft = await _save_draft(turn, address=address)
    wished = draft.get("wish")
    if wished:  # the day and time asked for at the start
        preference = _quiet_wish(dataclasses.replace(turn, text=wished))
        if preference:
            return await offer_slots(turn, preference)
    turn.say("utter_ask_visit_time")
    return [("awaiting", questions.VISIT_TIME), ("pending", None)]


async def answer_time(turn: Turn) -> list[SlotChange] | None:
    """Days and times that suit the borrower: offer the nearest free slots."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    preference = _wish(turn)
    if preference is None:
        return []
    if preference or _ANYTIME.search(turn.text):
        return await offer_slots(turn, preference)
    if turn.intent == "deny":
        return await _decline(turn)
    turn.say("utter_ask_visit_time")
    return []


async def _decline(turn: Turn) -> list[SlotChange]:
    await turn.services.bookings.release_holds(turn.conversation_id)
    turn.say("utter_visit_declined")
    return list(DONE)


async def offer_slots(turn: Turn, preference: Preference) -> list[SlotChange]:
    policy, account = turn.services.policy, turn.account
    slots = await turn.services.bookings.offer(
        turn.conversation_id, account.region, preference, turn.now,
        allowed=lambda slot: policy.visit_allowed(account, slot.start, slot.end).allowed)
    if not slots:
        turn.say("utter_no_visit_slots")
        return offer_person(turn, "book_visit")
    await _save_draft(turn, preference=preference.to_record(),
                      slots=[[s.start.isoformat(), s.minutes] for s in slots])
    turn.say("utter_visit_slots")
    for number, slot in enumerate(slots, start=1):
        turn.say("utter_visit_slot_option", number=number, **slot_when(slot, turn.account, turn.language))
    turn.say("utter_ask_visit_slot")
    turn.call_action("keys_answer")
    return [("awaiting", questions.VISIT_SLOT), ("pending", None)]


async def answer_slot(turn: Turn) -> list[SlotChange] | None:
    """A slot's number books it; another day or time offers again; no lets them go."""
    if turn.intent not in ANSWER_INTENTS:
        return None
    draft = await _draft(turn)
    offered = [Slot(turn.account.region, datetime.fromisoformat(start), minutes)
               for start, minutes in draft.get("slots", [])]
    number = read_choice_number(turn.text, len(offered))
    if number is not None:
        return await _book(turn, offered[number - 1], draft)
    preference = _wish(turn)
    if preference is None:
        return []
    if preference:  # a change of mind: "actually Sunday afternoon"
        return await offer_slots(turn, preference)
    if turn.intent == "deny":
        return await _decline(turn)
    turn.say("utter_ask_visit_slot")
    return []


async def _book(turn: Turn, slot: Slot, draft: dict[str, Any]) -> list[SlotChange]:
    details = {k: draft[k] for k in ("place", "address", "language") if k in draft}
    booking = await turn.services.bookings.book(turn.conversation_id, turn.account.account_id, slot, details,
                                                now=turn.now)
    if booking is None:
        turn.say("utter_visit_slot_taken")
        return await offer_slots(turn, Preference.from_record(draft.get("preference")))
    await turn.services.redis.delete(keys.visit_draft(turn.conversation_id))
    values = {**slot_when(booking.slot, turn.account, turn.language), "address": details.get("address", ""),
              "staff": staff_line(booking, turn.language)}
    turn.say("utter_visit_booked", **values)
    if turn.channel == "voice":  # the names and staff IDs to check at the door, in writing
        turn.send_text("utter_visit_booked", **values)
    return list(DONE)


def staff_line(booking: Booking, language: str) -> str:
    """The visitors' names and staff IDs, to check at the door."""
    return ("、" if language == "zh" else ", ").join(f"{s.name} {s.staff_id}" for s in booking.staff)


# --- the day-before reminder ---------------------------------------------------------------


async def _remind(svc: Services, sender: Sender, responses: dict[str, Any], booking: Booking) -> list[Sent]:
    account = await svc.ledger.get(booking.account_id)
    if account is None:
        return []
    language = booking.details.get("language", account.language)
    when = slot_when(booking.slot, account, language)
    body = catalog.render(responses, "utter_visit_reminder", language, "sms", **when,
                          staff=staff_line(booking, language), bank_phone=svc.settings.bank_phone)
    return [await sender.sms(account, body, f"visit-reminder:{booking.booking_id}", purpose="visit_reminder")]


async def send_reminders(svc: Services, sender: Sender, now: datetime | None = None) -> list[Sent]:
    """Remind every borrower whose visit is tomorrow (in the region's time), through the contact policy.

    Each booking is reminded at most once (its outbox key); a reminder the policy
    blocks now (say, at night) is tried again on the next run.
    """
    now = now or datetime.now(ZoneInfo("UTC"))
    responses = catalog.responses()
    sent = []
    for code, region in svc.bookings.field_teams.regions.items():
        tomorrow = (now.astimezone(region.zone) + timedelta(days=1)).date()
        for booking in await svc.bookings.bookings_on(tomorrow):
            if booking.slot.region == code:
                sent += await _remind(svc, sender, responses, booking)
    return sent
