"""The ledger view of one account: agents' outcomes, newest first and without their notes."""

from __future__ import annotations

from datetime import date

from bot import keys
from bot.account_view import account_summary
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
