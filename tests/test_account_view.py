"""The ledger view of one account: agents' and field visits' outcomes, newest first and without free text."""

from __future__ import annotations

from datetime import date

from bot.console.account_view import account_summary
from bot.core import keys
from bot.services import Services

TODAY = date(2026, 11, 29)
CODES = ("no_contact", "promise", "other", "plan", "dispute_opened", "wrong_number")


async def test_the_newest_five_agent_outcomes_are_shown_without_notes(services: Services) -> None:
    for n, code in enumerate(CODES):  # pushed oldest first, as agents close them
        record = {"outcome": code, "at": 1_790_000_000 + n * 3600, "agent": f"agent{n}",
                  "conversation": f"c_{n}", "reason": "dispute", "note": f"called 13912345678 about 李梅 #{n}"}
        await services.redis.lpush(keys.agent_outcomes("CN001"), services.vault.seal(record))
    summary = await account_summary(services, "CN001", TODAY)
    assert summary is not None
    assert summary["agent_outcomes"] == [
        {"outcome": "wrong_number", "at": "2026-09-21T19:13:20+00:00", "agent": "agent5", "reason": "dispute"},
        {"outcome": "dispute_opened", "at": "2026-09-21T18:13:20+00:00", "agent": "agent4", "reason": "dispute"},
        {"outcome": "plan", "at": "2026-09-21T17:13:20+00:00", "agent": "agent3", "reason": "dispute"},
        {"outcome": "other", "at": "2026-09-21T16:13:20+00:00", "agent": "agent2", "reason": "dispute"},
        {"outcome": "promise", "at": "2026-09-21T15:13:20+00:00", "agent": "agent1", "reason": "dispute"},
    ]
    flat = str(summary)
    for private in ("13912345678", "李梅", "called"):
        assert private not in flat


async def test_no_agent_outcomes_is_an_empty_list(services: Services) -> None:
    summary = await account_summary(services, "CN002", TODAY)
    assert summary is not None
    assert summary["agent_outcomes"] == []


VISITS = (("follow_up_visit", False, "2026-10-01"), ("promise", True, "2026-09-30"), ("legal_review", False, ""),
          ("plan", True, ""), ("paid_on_spot", True, ""), ("promise", True, "2026-10-05"))
VISIT_TEXT = "李梅 at 13912345678 said her husband's employer pays late"


def visit_outcome(n: int, code: str, went_ahead: bool, day: str) -> dict[str, object]:
    """An outcome entry as FieldVisits.submit files it, plus free text that must never be shown."""
    return {"code": code, "at": 1_790_000_000 + n * 3600, "booking_id": f"b_{n}", "went_ahead": went_ahead,
            "date": day, "next_step": VISIT_TEXT}


async def test_the_newest_five_visit_outcomes_are_shown_without_what_the_visitors_wrote(services: Services) -> None:
    for n, (code, went_ahead, day) in enumerate(VISITS):  # submitted oldest first
        entry = visit_outcome(n, code, went_ahead, day)
        await services.redis.zadd(keys.field_visit_outcomes("CN001"), {services.vault.seal(entry): entry["at"]})
    summary = await account_summary(services, "CN001", TODAY)
    assert summary is not None
    assert summary["visit_outcomes"] == [
        {"outcome": "promise", "at": "2026-09-21T19:13:20+00:00", "went_ahead": True, "date": "2026-10-05"},
        {"outcome": "paid_on_spot", "at": "2026-09-21T18:13:20+00:00", "went_ahead": True, "date": None},
        {"outcome": "plan", "at": "2026-09-21T17:13:20+00:00", "went_ahead": True, "date": None},
        {"outcome": "legal_review", "at": "2026-09-21T16:13:20+00:00", "went_ahead": False, "date": None},
        {"outcome": "promise", "at": "2026-09-21T15:13:20+00:00", "went_ahead": True, "date": "2026-09-30"},
    ]
    flat = str(summary)
    for private in ("13912345678", "李梅", "employer pays late"):
        assert private not in flat


async def test_an_unknown_visit_outcome_or_day_shows_nothing_of_itself(services: Services) -> None:
    entry = {"code": "told 李梅 to pay", "at": 1_790_000_000, "booking_id": "b_1", "went_ahead": True,
             "date": "call 13912345678", "next_step": VISIT_TEXT}
    await services.redis.zadd(keys.field_visit_outcomes("CN001"), {services.vault.seal(entry): entry["at"]})
    summary = await account_summary(services, "CN001", TODAY)
    assert summary is not None
    assert summary["visit_outcomes"] == [
        {"outcome": "other", "at": "2026-09-21T14:13:20+00:00", "went_ahead": True, "date": None}]
    flat = str(summary)
    for private in ("13912345678", "李梅", "employer pays late"):
        assert private not in flat


async def test_no_visit_outcomes_is_an_empty_list(services: Services) -> None:
    summary = await account_summary(services, "CN002", TODAY)
    assert summary is not None
    assert summary["visit_outcomes"] == []
