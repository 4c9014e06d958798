"""Visit booking: the field-teams policy, slots, borrowers' wishes, holds and bookings on the real Redis.

Relative dates in wishes are read as of Wednesday 2026-12-02.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import keys
from bot.core.dates import ImpossibleDate
from bot.domain.booking import (
    LEAD_TIME,
    Bookings,
    FieldTeams,
    FieldTeamsError,
    Region,
    Slot,
    Staff,
    Team,
    candidate_slots,
    closeness,
    load_field_teams,
    slots_on,
)
from bot.domain.visit_times import Preference, read_preference
from bot.services import Services

SHANGHAI = ZoneInfo("Asia/Shanghai")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
TODAY = date(2026, 12, 2)  # a Wednesday
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)  # Monday 08:00: the first slot that can be offered is 10:30
DETAILS = {"place": "home", "address": "上海市浦东新区世纪大道100号", "language": "zh"}


MON_TO_SAT = frozenset(range(6))
NINE_TO_SIX = (time(9), time(18))


def make_region(code: str, teams: int = 2, zone: str = "Asia/Shanghai", days: frozenset[int] = MON_TO_SAT,
                hours: tuple[time, time] = NINE_TO_SIX, visit: int = 60, buffer: int = 30) -> Region:
    return Region(code=code, timezone=zone, working_days=days, day_start=hours[0], day_end=hours[1],
                  visit_minutes=visit, travel_buffer_minutes=buffer,
                  teams=tuple(Team(f"{code}-T{n}", (Staff(f"Officer {n}A", f"{code}-{n}A"),
                                                     Staff(f"Officer {n}B", f"{code}-{n}B")))
                              for n in range(1, teams + 1)))


ONE = make_region("ONE", teams=1)
TWO = make_region("TWO", teams=2)
FIELD_TEAMS = FieldTeams(hold_minutes=10, days_ahead=14, regions={"ONE": ONE, "TWO": TWO})


def bookings(services: Services) -> Bookings:
    return Bookings(services.redis, services.vault, FIELD_TEAMS)


def at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=zone)


# --- the policy file -----------------------------------------------------------------------------


def test_policy_file_has_the_four_regions_with_two_visitors_per_team() -> None:
    teams = load_field_teams()
    assert (teams.hold_minutes, teams.days_ahead) == (10, 14)
    assert set(teams.regions) == {"SH", "BJ", "CA", "NY"}
    assert teams.regions["SH"].capacity == 2
    assert teams.regions["CA"].zone == LOS_ANGELES
    assert all(len(team.staff) >= 2 for region in teams.regions.values() for team in region.teams)
    assert teams.region("XX") is None


VALID: dict[str, Any] = {
    "hold_minutes": 10, "days_ahead": 14,
    "regions": {
        "SH": {"timezone": "Asia/Shanghai", "working_days": ["mon", "tue"], "working_hours": ["09:00", "18:00"],
               "visit_minutes": 60, "travel_buffer_minutes": 30,
               "teams": [{"id": "SH-T1", "staff": [{"name": "王磊", "staff_id": "SH-1"},
                                                   {"name": "陈静", "staff_id": "SH-2"}]}]},
        "NY": {"timezone": "America/New_York", "working_days": ["mon"], "working_hours": ["09:00", "17:00"],
               "visit_minutes": 60, "travel_buffer_minutes": 0,
               "teams": [{"id": "NY-T1", "staff": [{"name": "Ann Lee", "staff_id": "NY-1"},
                                                   {"name": "Bo Park", "staff_id": "NY-2"}]}]},
    },
}


def write(tmp_path: Path, change: Any) -> Path:
    config = copy.deepcopy(VALID)
    change(config)
    path = tmp_path / "field_teams.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_a_valid_file_loads(tmp_path: Path) -> None:
    teams = load_field_teams(write(tmp_path, lambda c: None))
    assert teams.regions["NY"].working_days == frozenset({0})
    assert teams.regions["SH"].teams[0].staff[1] == Staff("陈静", "SH-2")


@pytest.mark.parametrize(("change", "region", "field", "words"), [
    (lambda c: c["regions"]["SH"]["teams"][0]["staff"].pop(), "SH", "teams[0].staff", "at least 2 staff"),
    (lambda c: c["regions"]["NY"].update(timezone="Mars/Olympus"), "NY", "timezone", "IANA"),
    (lambda c: c["regions"]["SH"].update(working_hours=["18:00", "09:00"]), "SH", "working_hours", "before end"),
    (lambda c: c["regions"]["SH"].update(working_hours=["9:00", "18:00"]), "SH", "working_hours", "HH:MM"),
    (lambda c: c["regions"]["SH"].update(working_hours=["09:00"]), "SH", "working_hours", "[start, end]"),
    (lambda c: c["regions"]["SH"].update(visit_minutes=0), "SH", "visit_minutes", "at least 1"),
    (lambda c: c["regions"]["SH"].update(visit_minutes=600), "SH", "visit_minutes", "does not fit"),
    (lambda c: c["regions"]["SH"].update(travel_buffer_minutes=-5), "SH", "travel_buffer_minutes", "at least 0"),
    (lambda c: c["regions"]["SH"].update(working_days=["mon", "funday"]), "SH", "working_days", "mon, tue"),
    (lambda c: c["regions"]["SH"].update(visit_minute=60), "SH", "visit_minute", "unknown field"),
    (lambda c: c["regions"]["SH"].update(teams=[]), "SH", "teams", "at least one team"),
    (lambda c: c["regions"]["NY"]["teams"][0].update(id="SH-T1"), "NY", "teams", "SH-T1 is used twice"),
    (lambda c: c["regions"]["NY"]["teams"][0]["staff"][0].update(staff_id="SH-1"), "NY", "teams", "two teams"),
    (lambda c: c.update(hold_minutes=0), None, "hold_minutes", "at least 1"),
    (lambda c: c.pop("days_ahead"), None, "days_ahead", "missing"),
    (lambda c: c.update(regions={}), None, "regions", "at least one region"),
])
def test_a_wrong_setting_is_named(tmp_path: Path, change: Any, region: str | None, field: str, words: str) -> None:
    with pytest.raises(FieldTeamsError) as error:
        load_field_teams(write(tmp_path, change))
    assert (error.value.region, error.value.field) == (region, field)
    assert words in str(error.value) and str(tmp_path) in str(error.value)


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "field_teams.yml"
    path.write_text("hold_minutes: 10\nregions: [unclosed\n", encoding="utf-8")
    with pytest.raises(FieldTeamsError, match="not valid YAML") as error:
        load_field_teams(path)
    assert error.value.field == "file" and str(path) in str(error.value)


def test_unquoted_times_are_explained(tmp_path: Path) -> None:
    path = write(tmp_path, lambda c: None)
    path.write_text(path.read_text(encoding="utf-8").replace("- '18:00'", "- 18:00"), encoding="utf-8")
    with pytest.raises(FieldTeamsError, match="YAML reads 18:00 as a number"):
        load_field_teams(path)


# --- slots ---------------------------------------------------------------------------------------


def test_a_day_starts_at_opening_and_steps_by_visit_plus_travel() -> None:
    starts = [slot.start.time() for slot in slots_on(TWO, date(2026, 12, 7))]
    assert starts == [time(9), time(10, 30), time(12), time(13, 30), time(15), time(16, 30)]


def test_the_last_slot_ends_by_closing_time() -> None:
    no_buffer = make_region("NB", buffer=0)
    slots = slots_on(no_buffer, date(2026, 12, 7))
    assert (slots[0].start.time(), slots[-1].start.time(), slots[-1].end.time()) == (time(9), time(17), time(18))
    assert len(slots) == 9


def test_no_slots_on_days_off() -> None:
    assert slots_on(TWO, date(2026, 12, 6)) == []  # a Sunday


def test_slots_are_in_the_regions_zone_with_a_stable_id() -> None:
    california = make_region("CA", zone="America/Los_Angeles", days=frozenset(range(5)))
    first = slots_on(california, date(2026, 12, 7))[0]
    assert first.start.tzinfo == LOS_ANGELES
    assert first.start.astimezone(ZoneInfo("UTC")) == datetime(2026, 12, 7, 17, 0, tzinfo=ZoneInfo("UTC"))
    assert first.slot_id == "CA:20261207T0900"
    assert first.end == first.start + timedelta(minutes=60)


def test_nothing_is_offered_within_two_hours_of_now() -> None:
    slots = candidate_slots(TWO, Preference(), datetime(2026, 12, 7, 9, 30, tzinfo=SHANGHAI), 1)
    assert slots[0].start == at(7, 12)
    on_the_dot = candidate_slots(TWO, Preference(), datetime(2026, 12, 7, 7, 0, tzinfo=SHANGHAI), 1)
    assert on_the_dot[0].start == at(7, 9)


def test_today_is_the_regions_today() -> None:
    california = make_region("CA", zone="America/Los_Angeles", days=frozenset(range(5)))
    now = datetime(2026, 12, 8, 2, 0, tzinfo=ZoneInfo("UTC"))  # Monday 18:00 in California, Tuesday in Shanghai
    slots = candidate_slots(california, Preference(), now, days_ahead=1)
    assert {slot.start.date() for slot in slots} == {date(2026, 12, 8)}


def test_only_working_days_within_days_ahead() -> None:
    slots = candidate_slots(TWO, Preference(), NOW, days_ahead=14)
    days = {slot.start.date() for slot in slots}
    assert max(days) == date(2026, 12, 21) and min(days) == date(2026, 12, 7)
    assert all(day.weekday() != 6 for day in days)


def test_the_wished_day_and_time_come_first_then_the_time_then_the_day() -> None:
    saturday_morning = Preference(day=date(2026, 12, 12), earliest=time(9), latest=time(12))
    slots = candidate_slots(TWO, saturday_morning, NOW, days_ahead=14)
    assert [s.start for s in slots[:2]] == [at(12, 9), at(12, 10, 30)]
    assert slots[2].start == at(7, 10, 30)  # a morning slot on another day, the soonest
    tiers = [closeness(saturday_morning, s) for s in slots]
    assert tiers == sorted(tiers)
    assert slots[tiers.index(2)].start == at(12, 12)  # then Saturday at other times


def test_weekday_sets_and_open_ended_windows() -> None:
    weekend_after_two = Preference(weekdays=frozenset({5, 6}), earliest=time(14))
    slots = candidate_slots(TWO, weekend_after_two, NOW, days_ahead=14)
    assert [s.start for s in slots[:2]] == [at(12, 15), at(12, 16, 30)]


@settings(max_examples=60, deadline=None)
@given(now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(ZoneInfo("UTC"))),
       weekdays=st.frozensets(st.integers(0, 6)), earliest=st.none() | st.times(), latest=st.none() | st.times(),
       zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "America/Los_Angeles"]))
def test_candidates_are_always_ahead_on_working_days_and_ordered(now: datetime, weekdays: frozenset[int],
                                                                 earliest: time | None, latest: time | None,
                                                                 zone: str) -> None:
    region = make_region("H", zone=zone, days=frozenset({0, 2, 4, 5}))
    preference = Preference(weekdays=weekdays, earliest=earliest, latest=latest)
    slots = candidate_slots(region, preference, now, days_ahead=7)
    assert len({s.slot_id for s in slots}) == len(slots)
    assert all(s.start >= now + LEAD_TIME and s.start.weekday() in region.working_days for s in slots)
    assert all(s.start.date() <= now.astimezone(region.zone).date() + timedelta(days=7) for s in slots)
    assert [(closeness(preference, s), s.start) for s in slots] == sorted((closeness(preference, s), s.start)
                                                                           for s in slots)


# --- reading wishes ------------------------------------------------------------------------------

SAT, TUE = date(2026, 12, 5), date(2026, 12, 8)
WEEKEND, WORKDAYS = frozenset({5, 6}), frozenset(range(5))


@pytest.mark.parametrize(("text", "expected"), [
    ("周六上午", Preference(day=SAT, earliest=time(9), latest=time(12))),
    ("星期六", Preference(day=SAT)),
    ("周三", Preference(day=TODAY)),  # find_date: a bare weekday that is today means today
    ("下周二下午两点以后", Preference(day=TUE, earliest=time(14), latest=time(18))),
    ("明天下午", Preference(day=date(2026, 12, 3), earliest=time(12), latest=time(18))),
    ("明天上午10点半", Preference(day=date(2026, 12, 3), earliest=time(10, 30), latest=time(11, 30))),
    ("工作日晚上不行，周末都可以", Preference(weekdays=WEEKEND)),
    ("周末", Preference(weekdays=WEEKEND)),
    ("周六日都行", Preference(weekdays=WEEKEND)),
    ("周六或周日", Preference(weekdays=WEEKEND)),
    ("周一到周五下午", Preference(weekdays=WORKDAYS, earliest=time(12), latest=time(18))),
    ("中午", Preference(earliest=time(11), latest=time(14))),
    ("晚上", Preference(earliest=time(18))),
    ("两点以后", Preference(earliest=time(14))),
    ("2点后", Preference(earliest=time(14))),
    ("11点前", Preference(latest=time(11))),
    ("十一点以前不行", Preference(earliest=time(11))),
    ("下午3点到5点", Preference(earliest=time(15), latest=time(17))),
    ("12月5号下午", Preference(day=SAT, earliest=time(12), latest=time(18))),
    ("晚一点", Preference()),  # "a bit later", not one o'clock
    ("随时都可以", Preference()),
])
def test_chinese_wishes(text: str, expected: Preference) -> None:
    assert read_preference(text, "zh", TODAY) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("next Tuesday after 2pm", Preference(day=TUE, earliest=time(14))),
    ("tomorrow morning", Preference(day=date(2026, 12, 3), earliest=time(9), latest=time(12))),
    ("any weekday afternoon", Preference(weekdays=WORKDAYS, earliest=time(12), latest=time(18))),
    ("Saturday", Preference(day=SAT)),
    ("Wednesday", Preference(day=date(2026, 12, 9))),  # find_date: in English, the next one after today
    ("Saturday or Sunday", Preference(weekdays=WEEKEND)),
    ("every saturday", Preference(weekdays=frozenset({5}))),
    ("mon-fri", Preference(weekdays=WORKDAYS)),
    ("weekends", Preference(weekdays=WEEKEND)),
    ("the 5th at 10am", Preference(day=SAT, earliest=time(10), latest=time(11))),
    ("before 11", Preference(latest=time(11))),
    ("after 2", Preference(earliest=time(14))),  # visits are in working hours: 2 is 2pm
    ("after 10:30", Preference(earliest=time(10, 30))),
    ("before noon", Preference(latest=time(12))),
    ("between 2 and 4", Preference(earliest=time(14), latest=time(16))),
    ("2-4pm", Preference(earliest=time(14), latest=time(16))),
    ("11-1pm", Preference(earliest=time(11), latest=time(13))),
    ("not before 10am", Preference(earliest=time(10))),
    ("no later than 3", Preference(latest=time(15))),
    ("I'm busy in the morning, afternoon is fine", Preference(earliest=time(12), latest=time(18))),
    ("in 3 days", Preference(day=SAT)),  # "3" is not a time here
    ("anytime", Preference()),
])
def test_english_wishes(text: str, expected: Preference) -> None:
    assert read_preference(text, "en", TODAY) == expected


@pytest.mark.parametrize(("text", "language"), [("2月30日上午", "zh"), ("feb 30 after 2pm", "en")])
def test_impossible_days_are_left_to_the_caller(text: str, language: str) -> None:
    with pytest.raises(ImpossibleDate):
        read_preference(text, language, TODAY)


# --- holds and bookings --------------------------------------------------------------------------


async def test_offer_holds_the_closest_slots(services: Services) -> None:
    store = bookings(services)
    monday_afternoon = Preference(day=date(2026, 12, 7), earliest=time(12), latest=time(18))
    offered = await store.offer("c_a", "TWO", monday_afternoon, NOW)
    assert [s.start for s in offered] == [at(7, 12), at(7, 13, 30), at(7, 15)]
    assert await services.redis.smembers(keys.visit_holds("c_a")) == {s.slot_id.encode() for s in offered}
    assert 0 < await services.redis.ttl(keys.visit_holds("c_a")) <= 600


async def test_a_region_without_field_teams_offers_nothing(services: Services) -> None:
    store = bookings(services)
    assert await store.offer("c_a", "XX", Preference(), NOW) == []
    assert await store.offer("c_a", "", Preference(), NOW) == []
    assert (store.serves("ONE"), store.serves("XX"), store.serves("")) == (True, False, False)
    assert store.zones() == {SHANGHAI}


async def test_a_held_slot_is_not_offered_to_another_until_the_hold_lapses(services: Services) -> None:
    store = bookings(services)
    [held] = await store.offer("c_a", "ONE", Preference(), NOW, limit=1)
    [other] = await store.offer("c_b", "ONE", Preference(), NOW + timedelta(minutes=9), limit=1)
    assert other != held
    [later] = await store.offer("c_c", "ONE", Preference(), NOW + timedelta(minutes=10), limit=1)
    assert later == held


async def test_only_the_holder_can_book_a_held_slot_while_the_hold_lasts(services: Services) -> None:
    store = bookings(services)
    [held] = await store.offer("c_a", "ONE", Preference(), NOW, limit=1)
    assert await store.book("c_b", "CN002", held, DETAILS, now=NOW + timedelta(minutes=5)) is None
    booking = await store.book("c_a", "CN001", held, DETAILS, now=NOW + timedelta(minutes=5))
    assert booking is not None and booking.slot == held and booking.team_id == "ONE-T1"


async def test_anyone_can_book_once_the_hold_lapses(services: Services) -> None:
    store = bookings(services)
    [held] = await store.offer("c_a", "ONE", Preference(), NOW, limit=1)
    assert await store.book("c_b", "CN002", held, DETAILS, now=NOW + timedelta(minutes=11)) is not None
    assert await store.book("c_a", "CN001", held, DETAILS, now=NOW + timedelta(minutes=12)) is None


async def test_a_new_offer_or_a_release_lets_earlier_holds_go(services: Services) -> None:
    store = bookings(services)
    first = await store.offer("c_a", "ONE", Preference(), NOW)
    await store.offer("c_a", "ONE", Preference(day=date(2026, 12, 12)), NOW)
    assert await store.offer("c_b", "ONE", Preference(), NOW) == first
    await store.release_holds("c_b")
    assert await store.offer("c_c", "ONE", Preference(), NOW) == first
    assert not await services.redis.exists(keys.visit_holds("c_b"))


async def test_booking_is_sealed_indexed_audited_and_readable(services: Services) -> None:
    store = bookings(services)
    [slot] = await store.offer("c_a", "TWO", Preference(), NOW, limit=1)
    booking = await store.book("c_a", "CN001", slot, DETAILS, now=NOW)
    assert booking is not None
    assert booking.staff == TWO.teams[0].staff and booking.details == DETAILS
    assert await store.booking_for("CN001") == booking
    assert await store.bookings_on(slot.start.date()) == [booking]
    assert not await services.redis.exists(keys.visit_holds("c_a"))
    raw = await services.redis.hgetall(keys.visit_booking(booking.booking_id))
    assert "世纪大道".encode() not in b"".join(raw.values())
    assert services.vault.open(raw[b"record"])["details"] == DETAILS
    event = (await services.redis.xrevrange(keys.AUDIT_STREAM, count=1))[0][1]
    assert event[b"event"] == b"visit_booked" and event[b"slot"] == slot.slot_id.encode()
    assert event[b"account_id"] == b"CN001" and event[b"team"] == b"TWO-T1"


async def test_booking_the_same_slot_again_changes_nothing(services: Services) -> None:
    store = bookings(services)
    slot = Slot("TWO", at(8, 9))
    first = await store.book("c_a", "CN001", slot, DETAILS, now=NOW)
    again = await store.book("c_a", "CN001", slot, DETAILS, now=NOW)
    assert first is not None and again == first
    assert await services.redis.hlen(keys.visit_slot(slot.slot_id)) == 1


async def test_a_reschedule_frees_the_old_slot_in_the_same_step(services: Services) -> None:
    store = bookings(services)
    old_slot, new_slot = Slot("ONE", at(8, 9)), Slot("ONE", at(9, 15))
    old = await store.book("c_a", "CN001", old_slot, DETAILS, now=NOW)
    new = await store.book("c_a", "CN001", new_slot, {**DETAILS, "place": "work"}, now=NOW)
    assert old is not None and new is not None and new.booking_id != old.booking_id
    assert await store.booking_for("CN001") == new
    assert not await services.redis.exists(keys.visit_slot(old_slot.slot_id), keys.visit_booking(old.booking_id))
    assert await store.bookings_on(date(2026, 12, 8)) == []
    assert await store.book("c_b", "CN002", old_slot, DETAILS, now=NOW) is not None  # capacity 1, free again
    event = (await services.redis.xrevrange(keys.AUDIT_STREAM, count=2))[1][1]
    assert event[b"event"] == b"visit_rescheduled" and event[b"replaces"] == old.booking_id.encode()


async def test_cancel_frees_the_slot(services: Services) -> None:
    store = bookings(services)
    slot = Slot("ONE", at(8, 9))
    booking = await store.book("c_a", "CN001", slot, DETAILS, now=NOW)
    assert await store.cancel("CN001", now=NOW) == booking
    assert await store.booking_for("CN001") is None
    assert await store.bookings_on(date(2026, 12, 8)) == []
    assert await store.cancel("CN001", now=NOW) is None
    assert await store.book("c_b", "CN002", slot, DETAILS, now=NOW) is not None
    events = [fields[b"event"] for _, fields in await services.redis.xrange(keys.AUDIT_STREAM)]
    assert b"visit_cancelled" in events


async def test_bookings_on_a_day_are_in_time_order(services: Services) -> None:
    store = bookings(services)
    late = await store.book("c_a", "CN001", Slot("TWO", at(8, 15)), DETAILS, now=NOW)
    early = await store.book("c_b", "CN002", Slot("ONE", at(8, 9)), DETAILS, now=NOW)
    assert await store.bookings_on(date(2026, 12, 8)) == [early, late]


async def test_slots_that_do_not_exist_or_have_begun_cannot_be_booked(services: Services) -> None:
    store = bookings(services)
    with pytest.raises(ValueError, match="not one of region ONE's visit slots"):
        await store.book("c_a", "CN001", Slot("ONE", at(8, 9, 15)), DETAILS, now=NOW)
    with pytest.raises(ValueError, match="not one of"):
        await store.book("c_a", "CN001", Slot("ONE", at(13, 9)), DETAILS, now=NOW)  # a Sunday
    with pytest.raises(ValueError, match="no field team"):
        await store.book("c_a", "CN001", Slot("XX", at(8, 9)), DETAILS, now=NOW)
    assert await store.book("c_a", "CN001", Slot("ONE", at(7, 9)), DETAILS, now=at(7, 9, 5)) is None


async def test_a_slot_given_in_another_zone_is_booked_in_the_regions(services: Services) -> None:
    utc_start = at(8, 9).astimezone(ZoneInfo("UTC"))  # 01:00 UTC, the evening before in UTC
    booking = await bookings(services).book("c_a", "CN001", Slot("ONE", utc_start, 5), DETAILS, now=NOW)
    assert booking is not None and booking.slot == Slot("ONE", at(8, 9), 60)
    assert [b.booking_id for b in await bookings(services).bookings_on(date(2026, 12, 8))] == [booking.booking_id]


async def test_key_names_and_plain_values_hold_no_personal_data(services: Services) -> None:
    before = {key async for key in services.redis.scan_iter()}
    store = bookings(services)
    conversation = "c_" + "0" * 32
    details = {**DETAILS, "name": "张伟", "phone": "+8613800138000"}
    [slot, other, _] = await store.offer(conversation, "TWO", Preference(), NOW)
    await store.book(conversation, "CN001", slot, details, now=NOW)
    await store.book(conversation, "CN001", other, details, now=NOW)
    await store.offer("c_b", "TWO", Preference(), NOW)
    created = {key async for key in services.redis.scan_iter()} - before
    assert {key.split(b":")[1] for key in created} >= {b"slot", b"holds", b"booking", b"account", b"day"}
    personal = ["张伟".encode(), b"13800138000", "世纪大道".encode()]
    for key in created | {keys.AUDIT_STREAM.encode()}:
        assert not any(word in key for word in personal)
        kind = (await services.redis.type(key)).decode()
        if kind == "hash":
            plain = {k: v for k, v in (await services.redis.hgetall(key)).items() if k != b"record"}
            text = b" ".join([*plain, *plain.values()])
        elif kind == "stream":
            text = b" ".join(b" ".join([*f, *f.values()]) for _, f in await services.redis.xrange(key))
        else:
            text = repr(await services.redis.dump(key)).encode()
        assert not any(word in text for word in personal), key


async def test_hundreds_of_simultaneous_bookings_never_double_book(services: Services) -> None:
    clients = [aioredis.from_url(services.settings.redis_url) for _ in range(4)]
    stores = [Bookings(client, services.vault, FIELD_TEAMS) for client in clients]
    slots = slots_on(TWO, date(2026, 12, 8))[:5]
    try:
        results = await asyncio.gather(*(
            stores[n % 4].book(f"c_{n}", f"A{n}", slots[n % len(slots)], {"place": "home"}, now=NOW)
            for n in range(300)))
        winners = [booking for booking in results if booking is not None]
        assert Counter(b.slot.slot_id for b in winners) == {s.slot_id: TWO.capacity for s in slots}
        assert len({(b.slot.slot_id, b.team_id) for b in winners}) == len(winners)
        for booking in winners:
            assert await stores[0].booking_for(booking.account_id) == booking
        for slot in slots:
            fields = await services.redis.hgetall(keys.visit_slot(slot.slot_id))
            assert sorted(fields.values()) == sorted(f"B|{b.booking_id}".encode() for b in winners
                                                     if b.slot == slot)
        assert len(await stores[1].bookings_on(date(2026, 12, 8))) == len(winners)
    finally:
        for client in clients:
            await client.close()


async def test_simultaneous_reschedules_of_one_account_leave_one_booking(services: Services) -> None:
    clients = [aioredis.from_url(services.settings.redis_url) for _ in range(4)]
    stores = [Bookings(client, services.vault, FIELD_TEAMS) for client in clients]
    slots = [slot for day in (8, 9, 10) for slot in slots_on(TWO, date(2026, 12, day))]
    try:
        results = await asyncio.gather(*(stores[n % 4].book(f"c_{n}", "CN001", slots[n % len(slots)], DETAILS,
                                                            now=NOW) for n in range(100)))
        assert all(result is not None for result in results)
        final = await stores[0].booking_for("CN001")
        assert final is not None
        taken = [(slot.slot_id, await services.redis.hgetall(keys.visit_slot(slot.slot_id))) for slot in slots]
        assert [(slot_id, fields) for slot_id, fields in taken if fields] == [
            (final.slot.slot_id, {final.team_id.encode(): f"B|{final.booking_id}".encode()})]
        assert [len(await stores[0].bookings_on(date(2026, 12, day))) for day in (8, 9, 10)].count(1) == 1
    finally:
        for client in clients:
            await client.close()
