"""Service levels: working time across weekends, nights and DST; the clocks a conversation runs; the file."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.handoffs import Item
from bot.domain.sla import Calendar, SlaError, clock, load_sla

SLA = load_sla()
SHANGHAI = ZoneInfo("Asia/Shanghai")
DESK = SLA.calendar
NEW_YORK = Calendar(ZoneInfo("America/New_York"), frozenset(range(5)), time(9), time(18))
# Within a year: a clock counts at most MAX_DAYS days.
moments = st.floats(min_value=datetime(2026, 1, 1).timestamp(), max_value=datetime(2026, 12, 31).timestamp())


def at(text: str, zone: ZoneInfo = SHANGHAI) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@given(a=moments, b=moments, c=moments, calendar=st.sampled_from([DESK, NEW_YORK]))
def test_working_time_adds_up_and_never_exceeds_the_clock(a: float, b: float, c: float, calendar: Calendar) -> None:
    first, middle, last = sorted((a, b, c))
    whole = calendar.working_seconds(first, last)
    assert whole == pytest.approx(calendar.working_seconds(first, middle) + calendar.working_seconds(middle, last))
    assert 0 <= whole <= last - first
    assert calendar.working_seconds(last, first) == 0


@pytest.mark.parametrize(("since", "until", "minutes"), [
    ("2026-12-04T17:00", "2026-12-07T10:00", 120),  # Friday 17:00 to Monday 10:00: an hour each side
    ("2026-12-05T10:00", "2026-12-06T22:00", 0),  # the weekend
    ("2026-12-07T23:00", "2026-12-08T09:30", 30),  # a night
    ("2026-12-07T08:00", "2026-12-07T20:00", 540),  # a whole working day
])
def test_the_desk_counts_its_working_hours_only(since: str, until: str, minutes: int) -> None:
    assert DESK.working_seconds(at(since), at(until)) / 60 == minutes


@pytest.mark.parametrize("day", ["2026-03-09", "2026-11-02"])  # the Mondays after clocks changed in New York
def test_a_working_day_is_nine_hours_whatever_daylight_saving_did(day: str) -> None:
    york = ZoneInfo("America/New_York")
    assert NEW_YORK.working_seconds(at(f"{day}T00:00", york), at(f"{day}T23:59", york)) == 9 * 3600
    weekend = NEW_YORK.working_seconds(at(f"{day}T00:00", york) - 2 * 86400, at(f"{day}T00:00", york))
    assert weekend == 0


def _item(reason: str, since: float, first_reply_at: float | None = None, waiting_since: float | None = None) -> Item:
    return Item("c_" + "0" * 32, "T00000", reason, 1, int(since), None, None,
                int(first_reply_at) if first_reply_at else None, int(waiting_since) if waiting_since else None)


@pytest.mark.parametrize(("reason", "minutes", "state"), [
    ("dispute", 5, "ok"), ("dispute", 12, "due_soon"), ("dispute", 15, "breached"),
    ("complaint", 20, "breached"), ("request_human", 20, "ok"), ("request_human", 50, "due_soon"),
    ("visit", 100, "due_soon"), ("visit", 119, "due_soon"), ("visit", 120, "breached"),
])
def test_the_first_reply_clock_runs_against_its_reasons_target(reason: str, minutes: int, state: str) -> None:
    now = at("2026-12-07T15:00")
    running = clock(SLA, _item(reason, now - minutes * 60), now)
    assert running is not None and running.kind == "first" and running.state == state


def test_after_a_reply_only_a_new_message_starts_the_next_clock() -> None:
    now = at("2026-12-07T15:00")
    answered = _item("dispute", now - 3600, first_reply_at=now - 1800)
    assert clock(SLA, answered, now) is None
    waiting = _item("dispute", now - 3600, first_reply_at=now - 1800, waiting_since=now - 31 * 60)
    running = clock(SLA, waiting, now)
    assert running is not None and (running.kind, running.state, running.target) == ("next", "breached", 30)
    assert int(running.minutes) == 31


def test_a_message_at_night_waits_for_the_morning() -> None:
    friday_night = at("2026-12-04T23:00")
    running = clock(SLA, _item("complaint", friday_night), at("2026-12-07T09:10"))
    assert running is not None and running.state == "ok" and int(running.minutes) == 10


@pytest.mark.parametrize(("old", "new"), [
    ('hours: ["09:00", "18:00"]', 'hours: ["18:00", "09:00"]'),
    ("warn_share: 0.75", "warn_share: 1.5"),
    ("  default: {first: 120, next: 240}\n", ""),
    ("days: [mon, tue, wed, thu, fri]", "days: [mon, someday]"),
    ("dispute: {first: 15, next: 30}", "dispute: {first: 0, next: 30}"),
])
def test_a_wrong_sla_file_is_refused(tmp_path: Path, old: str, new: str) -> None:
    text = (Path(__file__).parents[1] / "policy" / "sla.yml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "sla.yml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(SlaError):
        load_sla(path)


def test_now_and_then_a_clock_moves_forward() -> None:
    start = at("2026-12-07T10:00")
    earlier = clock(SLA, _item("dispute", start), start + 60)
    later = clock(SLA, _item("dispute", start), start + timedelta(minutes=10).total_seconds())
    assert earlier is not None and later is not None and later.minutes > earlier.minutes
