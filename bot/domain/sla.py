"""Service levels of the human desk: how long a handed-off conversation has waited for a person, in
working time, against the target for its reason (policy/sla.yml).

Two clocks: the first reply (from the hand-off) and the next reply (from the borrower's first message
after an agent's reply). Only the desk's working hours count, in the desk's time zone, so a message
at 23:00 on Friday starts counting at 09:00 on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bot.domain.handoffs import Item

SLA_FILE = Path(__file__).resolve().parents[2] / "policy" / "sla.yml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 400  # a clock older than this has long been breached; no need to count further


class SlaError(ValueError):
    """policy/sla.yml is wrong; the message says where."""


@dataclass(frozen=True)
class Calendar:
    """The desk's working hours: which weekdays, from when to when, in which zone."""

    zone: ZoneInfo
    days: frozenset[int]
    start: time
    end: time

    def working_seconds(self, since: float, until: float) -> float:
        """Seconds of working time between two instants (0 if ``until`` is not after ``since``)."""
        if until <= since:
            return 0.0
        first = datetime.fromtimestamp(since, self.zone).date()
        last = min(datetime.fromtimestamp(until, self.zone).date(), first + timedelta(days=MAX_DAYS))
        total = 0.0
        day = first
        while day <= last:
            if day.weekday() in self.days:
                opens, closes = self._window(day)
                total += max(0.0, min(until, closes) - max(since, opens))
            day += timedelta(days=1)
        return total

    def _window(self, day: date) -> tuple[float, float]:
        return (datetime.combine(day, self.start, self.zone).timestamp(),
                datetime.combine(day, self.end, self.zone).timestamp())


@dataclass(frozen=True)
class Targets:
    first_minutes: int
    next_minutes: int


@dataclass(frozen=True)
class Sla:
    calendar: Calendar
    warn_share: float
    targets: dict[str, Targets]

    def target(self, reason: str, kind: str) -> int:
        chosen = self.targets.get(reason) or self.targets["default"]
        return chosen.first_minutes if kind == "first" else chosen.next_minutes


@dataclass(frozen=True)
class Clock:
    """A running reply clock: which one, since when, how much working time it has used of its target."""

    kind: str  # "first" or "next"
    since: float
    minutes: float
    target: int
    state: str  # "ok", "due_soon" or "breached"



def clock(sla: Sla, item: Item, now: float) -> Clock | None:
    """The clock running on a handed-off conversation now, if any (none once an agent has answered the
    borrower's latest message)."""
    if item.first_reply_at is None:
        kind, started = "first", item.since
    elif item.waiting_since is not None:
        kind, started = "next", item.waiting_since
    else:
        return None
    minutes = sla.calendar.working_seconds(started, now) / 60
    target = sla.target(item.reason, kind)
    state = "breached" if minutes >= target else "due_soon" if minutes >= target * sla.warn_share else "ok"
    return Clock(kind, started, minutes, target, state)


def load_sla(path: Path = SLA_FILE) -> Sla:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        hours = spec["working_hours"]
        days = frozenset(DAYS.index(d) for d in hours["days"])
        start, end = (time.fromisoformat(t) for t in hours["hours"])
        calendar = Calendar(ZoneInfo(hours["timezone"]), days, start, end)
        targets = {reason: Targets(int(t["first"]), int(t["next"])) for reason, t in spec["targets"].items()}
        warn = float(spec["warn_share"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SlaError(f"{path}: {type(exc).__name__}: {exc}") from None
    if start >= end or not 0 < warn < 1 or "default" not in targets or any(
            min(t.first_minutes, t.next_minutes) <= 0 for t in targets.values()):
        raise SlaError(f"{path}: hours must run forwards, warn_share lie in (0, 1), targets be positive and "
                       "include a default")
    return Sla(calendar, warn, targets)


def breach_record(item: Item, found: Clock, agent: str, now: float) -> dict[str, str | int]:
    """What the breaches stream keeps of one late reply: no message, no personal data."""
    return {"conversation": item.conversation_id, "account_id": item.account_id, "reason": item.reason,
            "kind": found.kind, "agent": agent, "minutes": int(found.minutes), "target": found.target,
            "at": int(now)}
