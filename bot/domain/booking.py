"""Verification visits: field teams, free slots, and bookings that never clash.

Field teams per region live in policy/field_teams.yml. A slot is one visit time in a region;
its capacity is the number of teams there. Offering slots holds a team on each for a few
minutes while the borrower decides; booking takes a team for good. Borrowers' wishes are read
by bot/domain/visit_times.py.

Every change to slots is one Lua script in Redis, because each is a check-and-set across
several keys that must not interleave with another borrower's: "is a team still free on this
slot?" then "take it", together with the account's index, its old booking (freed in the same
step on a reschedule), the day index and the audit event. A script runs without any other
command in between, so one team on one slot goes to one borrower whatever the concurrency;
WATCH/MULTI would need retries under contention and still span several round trips.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core import keys
from bot.core.crypto import Vault
from bot.domain.visit_times import Preference

FIELD_TEAMS_FILE = Path(__file__).resolve().parents[2] / "policy" / "field_teams.yml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_STAFF = 2  # two visitors per visit
# Teams plan their routes ahead: nothing is offered that starts sooner than this.
LEAD_TIME = timedelta(hours=2)
UTC = ZoneInfo("UTC")


# --- field teams -------------------------------------------------------------------------------


class FieldTeamsError(ValueError):
    """policy/field_teams.yml is wrong; the message names the file, region and field."""

    def __init__(self, path: Path, region: str | None, field_name: str, problem: str) -> None:
        self.region = region
        self.field = field_name
        where = f"region {region}, " if region else ""
        super().__init__(f"{path}: {where}{field_name}: {problem}")


@dataclass(frozen=True)
class Staff:
    """One field officer."""

    name: str
    staff_id: str


@dataclass(frozen=True)
class Team:
    """The staff who make one visit together."""

    team_id: str
    staff: tuple[Staff, ...]


@dataclass(frozen=True)
class Region:
    """One region's field teams and working time, in its local time zone."""

    code: str
    timezone: str
    working_days: frozenset[int]  # Monday is 0
    day_start: time
    day_end: time
    visit_minutes: int
    travel_buffer_minutes: int
    teams: tuple[Team, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def capacity(self) -> int:
        """Visits one slot can take: one per team."""
        return len(self.teams)


@dataclass(frozen=True)
class FieldTeams:
    """The whole field-teams policy."""

    hold_minutes: int
    days_ahead: int
    regions: Mapping[str, Region]

    def region_of_staff(self, staff_id: str) -> Region | None:
        """The region whose teams include this staff id, if any."""
        return next((r for r in self.regions.values() for t in r.teams if any(s.staff_id == staff_id for s in t.staff)),
                    None)

    def region(self, code: str) -> Region | None:
        """The region with this ledger code, or None when it has no field team."""
        return self.regions.get(code.strip())


_TOP_FIELDS = {"hold_minutes", "days_ahead", "regions"}
_REGION_FIELDS = {"timezone", "working_days", "working_hours", "visit_minutes", "travel_buffer_minutes", "teams"}


def _whole(value: Any, path: Path, region: str | None, name: str, minimum: int) -> int:
    if value is None:
        raise FieldTeamsError(path, region, name, f"missing; set a whole number of at least {minimum}")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FieldTeamsError(path, region, name, f"{value!r} must be a whole number of at least {minimum}")
    return value


def _clock_time(value: Any, path: Path, region: str, name: str) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise FieldTeamsError(path, region, name, f"{value!r} is not a quoted HH:MM time; write e.g. \"09:00\" "
                                                  "(unquoted, YAML reads 18:00 as a number)")
    return time(int(value[:2]), int(value[3:]))


def _zone(value: Any, path: Path, region: str) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldTeamsError(path, region, "timezone", f"{value!r} is not an IANA time zone such as "
                                                        "Asia/Shanghai") from None
    return str(value)


def _working_days(value: Any, path: Path, region: str) -> frozenset[int]:
    if not isinstance(value, list) or not value or any(day not in WEEKDAYS for day in value) \
            or len(set(value)) != len(value):
        raise FieldTeamsError(path, region, "working_days", f"{value!r} must list distinct days from "
                                                            f"{', '.join(WEEKDAYS)}")
    return frozenset(WEEKDAYS.index(day) for day in value)


def _working_hours(value: Any, path: Path, region: str) -> tuple[time, time]:
    if not isinstance(value, list) or len(value) != 2:
        raise FieldTeamsError(path, region, "working_hours", f"{value!r} must be [start, end], "
                                                             "e.g. [\"09:00\", \"18:00\"]")
    start, end = (_clock_time(v, path, region, "working_hours") for v in value)
    if start >= end:
        raise FieldTeamsError(path, region, "working_hours", f"start {value[0]} must be before end {value[1]}")
    return start, end


def _staff(value: Any, path: Path, region: str, name: str) -> Staff:
    if not isinstance(value, dict) or set(value) != {"name", "staff_id"} \
            or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise FieldTeamsError(path, region, name, f"{value!r} must be {{name: ..., staff_id: \"...\"}} "
                                                  "with both filled in (quote the staff id)")
    return Staff(name=value["name"].strip(), staff_id=value["staff_id"].strip())


def _team(value: Any, path: Path, region: str, index: int) -> Team:
    name = f"teams[{index}]"
    if not isinstance(value, dict) or set(value) != {"id", "staff"} or not isinstance(value["id"], str):
        raise FieldTeamsError(path, region, name, "each team needs exactly an id (text) and a staff list")
    staff = value["staff"]
    if not isinstance(staff, list) or len(staff) < MIN_STAFF:
        raise FieldTeamsError(path, region, f"{name}.staff", f"team {value['id']} needs at least {MIN_STAFF} "
                                                             "staff: every visit is made by two people or more")
    return Team(team_id=value["id"], staff=tuple(_staff(s, path, region, f"{name}.staff[{n}]")
                                                 for n, s in enumerate(staff)))


def _region(code: Any, spec: Any, path: Path) -> Region:
    if not isinstance(code, str):
        raise FieldTeamsError(path, str(code), "regions", "quote the region code so YAML reads it as text")
    if not isinstance(spec, dict):
        raise FieldTeamsError(path, code, "regions", "each region must be a mapping of its settings")
    if unknown := set(spec) - _REGION_FIELDS:
        raise FieldTeamsError(path, code, sorted(unknown)[0], f"unknown field; expected {sorted(_REGION_FIELDS)}")
    if missing := _REGION_FIELDS - set(spec):
        raise FieldTeamsError(path, code, sorted(missing)[0], "missing")
    start, end = _working_hours(spec["working_hours"], path, code)
    visit = _whole(spec["visit_minutes"], path, code, "visit_minutes", 1)
    if datetime.combine(date.min, start) + timedelta(minutes=visit) > datetime.combine(date.min, end):
        raise FieldTeamsError(path, code, "visit_minutes", f"a {visit}-minute visit does not fit in working hours")
    teams = spec["teams"]
    if not isinstance(teams, list) or not teams:
        raise FieldTeamsError(path, code, "teams", "list at least one team, or remove the region")
    return Region(
        code=code, timezone=_zone(spec["timezone"], path, code),
        working_days=_working_days(spec["working_days"], path, code), day_start=start, day_end=end,
        visit_minutes=visit,
        travel_buffer_minutes=_whole(spec["travel_buffer_minutes"], path, code, "travel_buffer_minutes", 0),
        teams=tuple(_team(t, path, code, n) for n, t in enumerate(teams)),
    )


def _check_unique(regions: Mapping[str, Region], path: Path) -> None:
    """A team or an officer in two places could be booked twice at once."""
    team_ids: set[str] = set()
    staff_ids: set[str] = set()
    for region in regions.values():
        for team in region.teams:
            if team.team_id in team_ids:
                raise FieldTeamsError(path, region.code, "teams", f"team id {team.team_id} is used twice")
            team_ids.add(team.team_id)
            for person in team.staff:
                if person.staff_id in staff_ids:
                    raise FieldTeamsError(path, region.code, "teams",
                                          f"staff id {person.staff_id} is in two teams; one person, one team")
                staff_ids.add(person.staff_id)


def load_field_teams(path: Path = FIELD_TEAMS_FILE) -> FieldTeams:
    """Read and check the field-teams policy.

    Raises:
        FieldTeamsError: the file is not valid YAML or a setting is wrong; the message says which.
    """
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FieldTeamsError(path, None, "file", f"not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise FieldTeamsError(path, None, "file", "must be a mapping with hold_minutes, days_ahead and regions")
    if unknown := set(config) - _TOP_FIELDS:
        raise FieldTeamsError(path, None, sorted(unknown)[0], f"unknown field; expected {sorted(_TOP_FIELDS)}")
    specs = config.get("regions")
    if not isinstance(specs, dict) or not specs:
        raise FieldTeamsError(path, None, "regions", "list at least one region")
    regions = {str(code): _region(code, spec, path) for code, spec in specs.items()}
    _check_unique(regions, path)
    return FieldTeams(
        hold_minutes=_whole(config.get("hold_minutes"), path, None, "hold_minutes", 1),
        days_ahead=_whole(config.get("days_ahead"), path, None, "days_ahead", 1),
        regions=regions,
    )


# --- slots -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One visit time in a region; ``start`` is aware, in the region's zone."""

    region: str
    start: datetime
    minutes: int = 60  # the region's visit_minutes

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    @property
    def slot_id(self) -> str:
        """Stable and free of personal data: region and local start, e.g. SH:20261205T0900."""
        return f"{self.region}:{self.start:%Y%m%dT%H%M}"


def slots_on(region: Region, day: date) -> list[Slot]:
    """Every slot of a working day: from the day's start, every visit plus travel, ending by its end."""
    if day.weekday() not in region.working_days:
        return []
    step = timedelta(minutes=region.visit_minutes + region.travel_buffer_minutes)
    start = datetime.combine(day, region.day_start, tzinfo=region.zone)
    closing = datetime.combine(day, region.day_end, tzinfo=region.zone)
    slots = []
    while start + timedelta(minutes=region.visit_minutes) <= closing:
        slots.append(Slot(region.code, start, region.visit_minutes))
        start += step
    return slots


def _on_preferred_day(preference: Preference, day: date) -> bool:
    if preference.day is None and not preference.weekdays:
        return True
    return day == preference.day or day.weekday() in preference.weekdays


def _in_window(preference: Preference, start: time) -> bool:
    return (preference.earliest is None or start >= preference.earliest) and \
        (preference.latest is None or start < preference.latest)


def closeness(preference: Preference, slot: Slot) -> int:
    """0 the wished day and time, 1 the wished time on another day, 2 the wished day, 3 anything."""
    day, window = _on_preferred_day(preference, slot.start.date()), _in_window(preference, slot.start.time())
    return 0 if day and window else 1 if window else 2 if day else 3


def candidate_slots(region: Region, preference: Preference, now: datetime, days_ahead: int) -> list[Slot]:
    """The region's slots from ``LEAD_TIME`` after ``now`` to ``days_ahead`` days after today, closest first.

    Closest means: on a wished day inside the wished times, then the wished times on other days,
    then other times on a wished day, then the rest; earliest first within each.
    """
    today = now.astimezone(region.zone).date()
    soonest = now + LEAD_TIME
    slots = [slot for offset in range(days_ahead + 1) for slot in slots_on(region, today + timedelta(days=offset))
             if slot.start >= soonest]
    return sorted(slots, key=lambda slot: (closeness(preference, slot), slot.start))


# --- bookings in Redis -------------------------------------------------------------------------

# Slot hash visit:slot:<slot_id>, one field per team: "H|<conversation>|<expiry epoch>" is a hold,
# "B|<booking id>" a booking. Every script gets the key prefixes as ARGV[1..3] (slot, booking, day)
# because it reaches slots and bookings named in data; that needs a single Redis, not a Cluster.
_LUA_COMMON = """
local function hold_expiry(value)
  return tonumber(string.match(value, '|(%d+)$'))
end
local function is_free(value, now)
  -- nothing there, or a hold that has lapsed
  return not value or (string.sub(value, 1, 2) == 'H|' and hold_expiry(value) <= now)
end
local function release(index, slot_prefix, mine)
  -- drop the holds this conversation still has; bookings and others' holds stay
  for _, slot_id in ipairs(redis.call('SMEMBERS', index)) do
    local slot = slot_prefix .. slot_id
    local fields = redis.call('HGETALL', slot)
    for i = 1, #fields, 2 do
      if string.sub(fields[i + 1], 1, #mine) == mine then redis.call('HDEL', slot, fields[i]) end
    end
  end
  redis.call('DEL', index)
end
local function unbook(id, slot_prefix, booking_prefix, day_prefix)
  -- free the booking's team on its slot (if still its own), take it off its day, delete it
  local b = redis.call('HMGET', booking_prefix .. id, 'slot', 'team', 'day')
  if b[1] then
    local slot = slot_prefix .. b[1]
    if redis.call('HGET', slot, b[2]) == 'B|' .. id then redis.call('HDEL', slot, b[2]) end
    redis.call('ZREM', day_prefix .. b[3], id)
  end
  redis.call('DEL', booking_prefix .. id)
end
"""

# KEYS: holds index. ARGV[4..]: conversation, now, hold expiry, index ttl, limit, team count n,
# n team ids, then (slot id, slot ttl) pairs in the order to try.
_OFFER = _LUA_COMMON + """
local mine = 'H|' .. ARGV[4] .. '|'
local now, limit, n = tonumber(ARGV[5]), tonumber(ARGV[8]), tonumber(ARGV[9])
release(KEYS[1], ARGV[1], mine)
local held = {}
for i = 10 + n, #ARGV, 2 do
  if #held >= limit then break end
  local slot = ARGV[1] .. ARGV[i]
  for t = 10, 9 + n do
    if is_free(redis.call('HGET', slot, ARGV[t]), now) then
      redis.call('HSET', slot, ARGV[t], mine .. ARGV[6])
      redis.call('EXPIRE', slot, ARGV[i + 1])
      redis.call('SADD', KEYS[1], ARGV[i])
      held[#held + 1] = ARGV[i]
      break
    end
  end
end
if #held > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
return held
"""

# KEYS: slot, holds index, account index, new booking, day, audit stream.
# ARGV[4..]: conversation, now, booking id, slot id, day, start epoch, slot ttl, account id,
# team count n, then n (team id, sealed record for that team) pairs.
_BOOK = _LUA_COMMON + """
local mine = 'H|' .. ARGV[4] .. '|'
local now, id, n = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[12])
local old = redis.call('GET', KEYS[3])
if old and redis.call('HGET', ARGV[2] .. old, 'slot') == ARGV[7] then
  -- already booked on this slot (a retry): change nothing
  return {'same', redis.call('HGET', ARGV[2] .. old, 'record')}
end
local chosen
for i = 13, 11 + 2 * n, 2 do  -- the team this conversation holds, if the hold is live
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and string.sub(value, 1, #mine) == mine and hold_expiry(value) > now then chosen = i break end
end
if not chosen then
  for i = 13, 11 + 2 * n, 2 do  -- else any free team
    if is_free(redis.call('HGET', KEYS[1], ARGV[i]), now) then chosen = i break end
  end
end
if not chosen then return {'taken'} end
local team = ARGV[chosen]
redis.call('HSET', KEYS[1], team, 'B|' .. id)
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('HSET', KEYS[4], 'slot', ARGV[7], 'team', team, 'day', ARGV[8], 'record', ARGV[chosen + 1])
redis.call('SET', KEYS[3], id)
redis.call('ZADD', KEYS[5], ARGV[9], id)
if old then unbook(old, ARGV[1], ARGV[2], ARGV[3]) end
release(KEYS[2], ARGV[1], mine)
redis.call('XADD', KEYS[6], '*', 'event', old and 'visit_rescheduled' or 'visit_booked', 'booking', id,
           'account_id', ARGV[11], 'slot', ARGV[7], 'team', team, 'replaces', old or '', 'at', ARGV[5])
return {'booked', team}
"""

# KEYS: account index, audit stream. ARGV[4..]: account id, now.
_CANCEL = _LUA_COMMON + """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local b = redis.call('HMGET', ARGV[2] .. id, 'record', 'slot')
unbook(id, ARGV[1], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], '*', 'event', 'visit_cancelled', 'booking', id, 'account_id', ARGV[4],
           'slot', b[2] or '', 'at', ARGV[5])
return b[1]
"""

# KEYS: holds index. ARGV[4]: conversation.
_RELEASE = _LUA_COMMON + """
release(KEYS[1], ARGV[1], 'H|' .. ARGV[4] .. '|')
return 1
"""

# Reads in one step, so a reschedule running alongside is seen before or after, never half-done.
# KEYS: account index.
_READ_ACCOUNT = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HGET', ARGV[2] .. id, 'record')
"""
# KEYS: day index.
_READ_DAY = """
local records = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('HGET', ARGV[2] .. id, 'record')
  if record then records[#records + 1] = record end
end
return records
"""


@dataclass(frozen=True)
class Booking:
    """A booked visit. ``details`` holds place, address and language: personal data, stored sealed."""

    booking_id: str
    account_id: str
    conversation_id: str
    slot: Slot
    team_id: str
    staff: tuple[Staff, ...]
    details: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        """The booking as JSON-safe values (a visit record keeps this copy)."""
        return _record(self, str(self.slot.start.tzinfo))

    @staticmethod
    def from_record(record: dict[str, Any]) -> Booking:
        return _from_record(record)


def _record(booking: Booking, timezone: str) -> dict[str, Any]:
    return {
        "booking_id": booking.booking_id, "account_id": booking.account_id,
        "conversation_id": booking.conversation_id, "region": booking.slot.region, "timezone": timezone,
        "start": booking.slot.start.isoformat(), "minutes": booking.slot.minutes, "team_id": booking.team_id,
        "staff": [{"name": s.name, "staff_id": s.staff_id} for s in booking.staff], "details": booking.details,
    }


def _from_record(record: dict[str, Any]) -> Booking:
    start = datetime.fromisoformat(record["start"]).astimezone(ZoneInfo(record["timezone"]))
    return Booking(
        booking_id=record["booking_id"], account_id=record["account_id"],
        conversation_id=record["conversation_id"], slot=Slot(record["region"], start, record["minutes"]),
        team_id=record["team_id"], staff=tuple(Staff(**s) for s in record["staff"]), details=record["details"],
    )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _slot_ttl(slot: Slot, now: datetime) -> int:
    """Slot hashes clean themselves up a day after the visit."""
    return max(1, _epoch(slot.end) - _epoch(now) + 86400)


def _plain_id(conversation_id: str) -> str:
    if not conversation_id or "|" in conversation_id:
        raise ValueError(f"conversation id {conversation_id!r} must be non-empty and without '|'")
    return conversation_id


class Bookings:
    """Holds and bookings of visit slots; each change is one atomic Redis script (see the module doc)."""

    def __init__(self, redis: Any, vault: Vault, field_teams: FieldTeams) -> None:
        self._redis = redis
        self._vault = vault
        self.field_teams = field_teams
        self._prefixes = [keys.visit_slot(""), keys.visit_booking(""), keys.visit_day("")]
        self._offer = redis.register_script(_OFFER)
        self._book = redis.register_script(_BOOK)
        self._cancel = redis.register_script(_CANCEL)
        self._release = redis.register_script(_RELEASE)
        self._read_account = redis.register_script(_READ_ACCOUNT)
        self._read_day = redis.register_script(_READ_DAY)

    def serves(self, region_code: str) -> bool:
        """Whether the region has a field team; an account elsewhere cannot book a visit."""
        return self.field_teams.region(region_code) is not None

    def zones(self) -> set[ZoneInfo]:
        """The time zones of the regions served: a visit's day is its local day."""
        return {region.zone for region in self.field_teams.regions.values()}

    async def offer(self, conversation_id: str, region_code: str, preference: Preference, now: datetime,
                    limit: int = 3, allowed: Callable[[Slot], bool] = lambda slot: True) -> list[Slot]:
        """Hold a team on up to ``limit`` slots closest to the wish, for hold_minutes; earlier holds go.

        ``allowed``: the slots the contact rules let a visit take (bot.contact.policy.visit_allowed).
        Returns the held slots, best first; empty when the region has no field team or nothing is free.
        """
        region = self.field_teams.region(region_code)
        if region is None:
            return []
        candidates = [s for s in candidate_slots(region, preference, now, self.field_teams.days_ahead) if allowed(s)]
        hold_seconds = self.field_teams.hold_minutes * 60
        args: list[Any] = [*self._prefixes, _plain_id(conversation_id), _epoch(now), _epoch(now) + hold_seconds,
                           hold_seconds, limit, region.capacity, *(team.team_id for team in region.teams)]
        for slot in candidates:
            args += [slot.slot_id, _slot_ttl(slot, now)]
        held = {value.decode() for value in await self._offer(keys=[keys.visit_holds(conversation_id)], args=args)}
        return [slot for slot in candidates if slot.slot_id in held]

    async def book(self, conversation_id: str, account_id: str, slot: Slot, details: dict[str, Any],
                   now: datetime | None = None) -> Booking | None:
        """Book a team on ``slot``: the one this conversation holds, else any free one.

        A booking already on the account is replaced in the same step (a reschedule); asking again
        for the slot already booked changes nothing. Returns None when the slot has no team left
        for this conversation or has already begun.

        Raises:
            ValueError: the region has no field team, or ``slot`` is not one of its slots.
        """
        now = now or datetime.now(UTC)
        region, slot = self._checked(slot)
        if slot.start <= now:
            return None
        booking_id = "v" + secrets.token_hex(8)
        day = slot.start.date().isoformat()
        args: list[Any] = [*self._prefixes, _plain_id(conversation_id), _epoch(now), booking_id, slot.slot_id, day,
                           _epoch(slot.start), _slot_ttl(slot, now), account_id, region.capacity]
        drafts = {team.team_id: Booking(booking_id, account_id, conversation_id, slot, team.team_id, team.staff,
                                        details) for team in region.teams}
        for team_id, draft in drafts.items():
            args += [team_id, self._vault.seal(_record(draft, region.timezone))]
        outcome = await self._book(keys=[keys.visit_slot(slot.slot_id), keys.visit_holds(conversation_id),
                                         keys.visit_account(account_id), keys.visit_booking(booking_id),
                                         keys.visit_day(day), keys.AUDIT_STREAM], args=args)
        if outcome[0] == b"same":
            return _from_record(self._vault.open(outcome[1]))
        return drafts[outcome[1].decode()] if outcome[0] == b"booked" else None

    async def cancel(self, account_id: str, now: datetime | None = None) -> Booking | None:
        """Cancel the account's booking and free its team; returns what was cancelled, if anything."""
        now = now or datetime.now(UTC)
        sealed = await self._cancel(keys=[keys.visit_account(account_id), keys.AUDIT_STREAM],
                                    args=[*self._prefixes, account_id, _epoch(now)])
        return _from_record(self._vault.open(sealed)) if sealed else None

    async def booking(self, booking_id: str) -> Booking | None:
        """A booking by its id, if it stands (a cancelled one is gone)."""
        sealed = await self._redis.hget(keys.visit_booking(booking_id), "record")
        return _from_record(self._vault.open(sealed)) if sealed else None

    async def booking_for(self, account_id: str) -> Booking | None:
        """The account's booked visit, if any."""
        sealed = await self._read_account(keys=[keys.visit_account(account_id)], args=self._prefixes)
        return _from_record(self._vault.open(sealed)) if sealed else None

    async def bookings_on(self, day: date) -> list[Booking]:
        """Visits on a local date (every region), earliest first: for day-before reminders."""
        sealed = await self._read_day(keys=[keys.visit_day(day.isoformat())], args=self._prefixes)
        return [_from_record(self._vault.open(record)) for record in sealed]

    async def release_holds(self, conversation_id: str) -> None:
        """Let go of the slots this conversation was offered (the borrower declined or left)."""
        await self._release(keys=[keys.visit_holds(conversation_id)],
                            args=[*self._prefixes, _plain_id(conversation_id)])

    def _checked(self, slot: Slot) -> tuple[Region, Slot]:
        """The slot's region, and the slot as that region defines it (local time, visit length)."""
        region = self.field_teams.region(slot.region)
        if region is None:
            raise ValueError(f"region {slot.region!r} has no field team")
        if slot.start.tzinfo is None:
            raise ValueError(f"slot start {slot.start} has no time zone")
        local = Slot(region.code, slot.start.astimezone(region.zone), region.visit_minutes)
        if local not in slots_on(region, local.start.date()):
            raise ValueError(f"{local.slot_id} is not one of region {region.code}'s visit slots")
        return region, local
