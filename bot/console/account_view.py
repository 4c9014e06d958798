"""The ledger view of one account: what is owed and what was agreed, for people at the bank.

It shows what an agent needs to follow up (amounts, instalments, promises, plans,
bookings, consents, contact holds, how agents closed earlier conversations, what field
visits ended with) and no name, phone number or address: those stay behind the
console's roles. Nor does it show agents' notes or anything written in a visit record,
free text that may hold any of them.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.dialogue.conversation import local_today
from bot.domain.arrangements import promise_status, status
from bot.domain.consent import PURPOSES
from bot.domain.ledger import overdue
from bot.domain.plans import bucket, days_past_due
from bot.field.visits import OUTCOMES as VISIT_OUTCOMES
from bot.services import Services

OUTCOMES_SHOWN = 5


async def account_summary(svc: Services, account_id: str, today: date | None = None) -> dict[str, Any] | None:
    """Everything on record for the account, as plain JSON-safe values; None if no such account.

    Args:
        today: the day to judge by; by default today where the borrower lives.
    """
    account = await svc.ledger.get(account_id)
    if account is None:
        return None
    today = today or local_today(account)
    due = overdue(account, today)
    dpd = days_past_due(account, today)
    summary: dict[str, Any] = {
        "account_id": account_id, "product": account.product, "currency": account.currency,
        "overdue": {"amount": str(due.amount), "instalments": due.count,
                    "oldest_due": due.oldest_due.isoformat() if due.oldest_due else None,
                    "days_past_due": dpd, "bucket": bucket(dpd)},
        "instalments": [{"no": i.installment_no, "due": i.due_date.isoformat(), "amount_due": str(i.amount_due),
                         "amount_paid": str(i.amount_paid)} for i in account.installments],
    }
    promise = await svc.records.get_promise(account_id)
    if promise:
        summary["promise"] = {"date": promise["date"], "amount": promise["amount"],
                              "status": promise_status(promise, account, today)}
    arrangement = await svc.arrangements.current(account_id)
    if arrangement:
        summary["arrangement"] = {**arrangement["offer"], "accepted_on": arrangement["accepted_on"],
                                  "status": status(arrangement, account, today)}
    reason = await svc.arrangements.reason(account_id)
    if reason:
        summary["hardship_reason"] = reason["reason"]
    summary.update(await _visit_and_consents(svc, account_id))
    conversation = pseudonym(account.phone, svc.settings.hmac_secret)
    summary["contact_holds"] = sorted(k.decode() for k in await svc.redis.hkeys(keys.hold(account_id)))
    summary["opted_out"] = await svc.records.is_opted_out(conversation)
    summary["number_under_review"] = await svc.redis.zscore(keys.REVIEW_NUMBERS, conversation) is not None
    queued_for = await svc.redis.hget(keys.handoff(conversation), "reason")
    summary["handoff"] = queued_for.decode() if queued_for else None
    summary["agent_outcomes"] = await _agent_outcomes(svc, account_id)
    summary["visit_outcomes"] = await _visit_outcomes(svc, account_id)
    return summary


async def _agent_outcomes(svc: Services, account_id: str) -> list[dict[str, Any]]:
    """The newest closes by agents, newest first, without their notes."""
    records = await svc.handoffs.outcomes(account_id, OUTCOMES_SHOWN)
    return [{"outcome": r["outcome"], "at": datetime.fromtimestamp(r["at"], timezone.utc).isoformat(),
             "agent": r["agent"], "reason": r["reason"]} for r in records]


async def _visit_outcomes(svc: Services, account_id: str) -> list[dict[str, Any]]:
    """The newest submitted field visits' outcomes, newest first, with nothing written in their records.

    Each gives the outcome code, when the record was submitted, whether the visit went ahead, and the
    day a promise or a follow-up visit is due (None otherwise). A code that is not one of
    bot.field.visits.OUTCOMES shows as "other", and a day that is not an ISO date as None.
    """
    records = await svc.field_visits.outcomes(account_id, OUTCOMES_SHOWN)
    return [{"outcome": r.get("code") if r.get("code") in VISIT_OUTCOMES else "other",
             "at": datetime.fromtimestamp(r["at"], timezone.utc).isoformat(),
             "went_ahead": bool(r.get("went_ahead")), "date": _iso_day(r.get("date"))} for r in records]


def _iso_day(value: Any) -> str | None:
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) and value else None
    except ValueError:
        return None


async def _visit_and_consents(svc: Services, account_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    booking = await svc.bookings.booking_for(account_id)
    if booking:
        found["visit"] = {"start": booking.slot.start.isoformat(), "region": booking.slot.region,
                          "team": booking.team_id, "place": booking.details.get("place"),
                          "staff": [f"{s.name} {s.staff_id}" for s in booking.staff]}
    consents = {}
    for purpose in PURPOSES:
        record = await svc.consents.get(account_id, purpose)
        if record:
            consents[purpose] = {k: record[k] for k in ("status", "at", "channel", "wording_version")}
    found["consents"] = consents
    contact = await svc.consents.family_contact(account_id)
    if contact:
        found["family_contact"] = contact.masked_phone
    return found
