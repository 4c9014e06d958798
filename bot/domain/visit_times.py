"""Reading when a borrower would like a visit, from free text in Chinese or English.

"周六上午", "下周二下午两点以后", "工作日晚上不行，周末都可以", "next Tuesday after 2pm",
"any weekday afternoon": a day or a set of weekdays and a window of start times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from bot.core.dates import find_date, normalise_chinese


@dataclass(frozen=True)
class Preference:
    """When a borrower would like the visit; empty fields mean "any"."""

    day: date | None = None
    weekdays: frozenset[int] = frozenset()  # Monday is 0
    earliest: time | None = None  # a slot fits when it starts at or after this...
    latest: time | None = None  # ...and before this

    def to_record(self) -> dict[str, Any]:
        """JSON-safe, for a draft kept while the borrower decides."""
        return {"day": self.day.isoformat() if self.day else None, "weekdays": sorted(self.weekdays),
                "earliest": self.earliest.isoformat() if self.earliest else None,
                "latest": self.latest.isoformat() if self.latest else None}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Preference:
        if not record:
            return cls()
        return cls(day=date.fromisoformat(record["day"]) if record["day"] else None,
                   weekdays=frozenset(record["weekdays"]),
                   earliest=time.fromisoformat(record["earliest"]) if record["earliest"] else None,
                   latest=time.fromisoformat(record["latest"]) if record["latest"] else None)

    def __bool__(self) -> bool:
        """Whether it names any day or time at all."""
        return self != Preference()

PARTS_OF_DAY: dict[str, tuple[time, time | None]] = {
    "morning": (time(9), time(12)), "noon": (time(11), time(14)),
    "afternoon": (time(12), time(18)), "evening": (time(18), None),
}
_PARTS = re.compile(
    r"(?P<morning>上午|早上|早晨|\bmornings?\b)|(?P<noon>中午|\bnoon\b|\bmidday\b|\blunch ?time\b)"
    r"|(?P<afternoon>下午|\bafternoons?\b)|(?P<evening>晚上|傍晚|\bevenings?\b)", re.I)
_CLAUSE_BREAK = re.compile(r"[，,。;；!！?？\n]|\bbut\b|但是|不过|可是", re.I)
_NEGATION = re.compile(r"不行|不可以|不方便|没空|没时间|不能|不要|不在|没办法|有事|(?<!不)忙"
                       r"|\b(?:can'?t|cannot|not|don'?t|won'?t|isn'?t|doesn'?t|busy|unavailable|except)\b", re.I)
# "no later than 3" is "before 3": rewritten before clauses are judged for negation.
_REWRITES = ((re.compile(r"\bno later than\b", re.I), "before"), (re.compile(r"\bno earlier than\b", re.I), "after"),
             (re.compile("不晚于"), "早于"), (re.compile("不早于"), "晚于"))
# 晚一点 is "a bit later", not one o'clock.
_A_BIT = re.compile(r"一点[儿点]|(?<=[早晚快慢好多少稍有差])一点")

_WEEKEND = re.compile(r"周末|周6[日天]|双休日?|\bweek-?ends?\b", re.I)
_WORKDAYS = re.compile(r"工作日|平时|平日|\bweek-?days?\b", re.I)
_ZH_DAY = r"周([1-6日天])"
_ZH_DAY_NUMBER = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "日": 6, "天": 6}
_ZH_DAY_RANGE = re.compile(rf"{_ZH_DAY}\s*(?:到|至|-|~|～)\s*周?([1-6日天])")
_ZH_EVERY = re.compile(rf"每个?{_ZH_DAY}")
_ZH_NAMED = re.compile(rf"(?:下个?|这个?|本)?{_ZH_DAY}")
_EN_DAY = (r"(mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?"
           r"|sun(?:day)?)")
_EN_FULL_DAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_EN_DAY_RANGE = re.compile(rf"\b{_EN_DAY}\s*(?:-|–|to|through|thru|till|until)\s*{_EN_DAY}\b", re.I)
_EN_EVERY = re.compile(rf"\b(?:every|any|all)\s+{_EN_FULL_DAY}s?\b|\b{_EN_FULL_DAY}s\b", re.I)
_EN_NAMED = re.compile(rf"\b(?:next\s+|this\s+)?{_EN_FULL_DAY}\b", re.I)

# One time of day, in either language: "2", "2点半", "10:30", "2pm", "10:30 a.m.", "noon".
_T = (r"(?:(?<![\d:/])\d{1,2}(?:\s*(?:[点點]钟?|[时時])\s*(?:半|\d{1,2}\s*分?)?|:\d{2})?(?![\d/])"
      r"(?:\s*[ap]\.?m\b\.?)?|\bnoon\b|\bmidday\b)")
_RANGE = re.compile(rf"(?:\b(?P<cue>between|from)\s+|从)?(?P<a>{_T})\s*"
                    rf"(?:-|–|~|～|到|至|\bto\b|\band\b|\buntil\b|\btill\b)\s*(?P<b>{_T})", re.I)
_SINGLE = re.compile(
    rf"(?:\b(?P<cue>before|after|at|from|by|until|till|around|about|earlier than|later than)\s+"
    rf"|(?P<zh_cue>早于|晚于|从)\s*)?(?P<a>{_T})(?P<oclock>\s*o'?clock)?"
    r"\s*(?P<post>以后|之后|以後|之後|后|後|起|开始|以前|之前|前)?"
    r"(?!\s*(?:st|nd|rd|th|days?|weeks?|months?|hours?|hrs?|minutes?|mins?)\b|\s*[号號日月年个個分小])", re.I)
_CLOCK_PARTS = re.compile(r"(\d{1,2})(?:\s*(?:[点點]钟?|[时時])\s*(?:(半)|(\d{1,2}))?|:(\d{2}))?\s*(?:([ap])\.?m)?",
                          re.I)
_AFTER = {"after", "from", "later than", "晚于", "从", "以后", "之后", "以後", "之後", "后", "後", "起", "开始"}
_BEFORE = {"before", "by", "until", "till", "earlier than", "早于", "以前", "之前", "前"}


@dataclass(frozen=True)
class _Reading:
    """What one clause of a message says about timing."""

    day: date | None = None
    weekdays: frozenset[int] = frozenset()
    parts: tuple[str, ...] = ()
    after: tuple[time, ...] = ()
    before: tuple[time, ...] = ()
    negated: bool = False

    def only_bounds(self) -> bool:
        return not (self.day or self.weekdays or self.parts) and len(self.after) + len(self.before) == 1


@dataclass
class _Scan:
    """A clause being read: matched spans are blanked so later patterns and find_date skip them."""

    text: str
    parts: list[tuple[int, str]] = field(default_factory=list)  # (position, part of day)

    def take(self, match: re.Match[str]) -> None:
        self.text = self.text[:match.start()] + " " * (match.end() - match.start()) + self.text[match.end():]


def _hour24(hour: int, marker: str | None) -> int:
    """Hours as said to 24-hour: 下午两点 and 2pm are 14; a bare 1-6 is afternoon, as visits are in working hours."""
    if marker in ("pm", "afternoon", "evening") and hour < 12:
        return hour + 12
    if marker == "am" and hour == 12:
        return 0
    if marker in ("am", "morning"):
        return hour
    return hour + 12 if 1 <= hour <= 6 else hour


def _clock(text: str, marker: str | None) -> time | None:
    """"2点半", "10:30", "2pm", "noon" -> a time of day; ``marker`` is the part of day said nearby."""
    if text.lower() in ("noon", "midday"):
        return time(12)
    found = _CLOCK_PARTS.match(text.strip())
    if not found:
        return None
    hour, half, zh_minute, minute, ampm = found.groups()
    hour24 = _hour24(int(hour), f"{ampm.lower()}m" if ampm else marker)
    minutes = 30 if half else int(zh_minute or minute or 0)
    return time(hour24, minutes) if hour24 < 24 and minutes < 60 else None


def _marker(scan: _Scan, position: int) -> str | None:
    """The part of day a time belongs to: the last one said before it, else any in the clause."""
    before = [part for at, part in scan.parts if at < position]
    return before[-1] if before else scan.parts[0][1] if scan.parts else None


def _is_clock(text: str) -> bool:
    """A number that is plainly a time: "2点", "10:30", "2pm" (a bare "2" needs a cue like "after")."""
    return bool(re.search(r"[点點时時:]|[ap]\.?m", text, re.I))


def _read_ranges(scan: _Scan) -> tuple[list[time], list[time]]:
    """"2点到4点", "between 2 and 4", "2-4pm": from the first time, before the second."""
    after, before = [], []
    for found in list(_RANGE.finditer(scan.text)):
        if not (found["cue"] or found[0].startswith("从") or _is_clock(found["a"]) or _is_clock(found["b"])):
            continue  # "12-5" is more likely a date
        end = _clock(found["b"], _marker(scan, found.start("b")))
        ampm = re.search(r"([ap])\.?m", found["b"], re.I)
        start = None
        if ampm and not _is_clock(found["a"]):  # "2-4pm": the pm is meant for both...
            start = _clock(found["a"], f"{ampm[1].lower()}m")
        if start is None or (end and start > end):  # ...unless that puts the start after the end: "11-1pm"
            start = _clock(found["a"], _marker(scan, found.start("a")))
        if start and end:
            after.append(start)
            before.append(end)
            scan.take(found)
    return after, before


def _read_singles(scan: _Scan) -> tuple[list[time], list[time]]:
    """"after 2pm", "两点以后", "before 11", "11点前", "at 10am", "10点" (the hour from then)."""
    after, before = [], []
    for found in list(_SINGLE.finditer(scan.text)):
        cue = (found["cue"] or found["zh_cue"] or "").lower()
        post = found["post"] or ""
        if not (cue or post or found["oclock"] or _is_clock(found["a"])):
            continue  # a bare number: a day or an amount, not a time
        if found["a"].lower() in ("noon", "midday") and not cue:
            continue  # "noon" alone is a part of day
        at = _clock(found["a"], _marker(scan, found.start("a")))
        if at is None:
            continue
        if cue in _AFTER or post in _AFTER:
            after.append(at)
        elif cue in _BEFORE or post in _BEFORE:
            before.append(at)
        else:
            after.append(at)
            before.append(min(time(23, 59), (datetime.combine(date.min, at) + timedelta(hours=1)).time()))
        scan.take(found)
    return after, before


def _day_set(first: int, last: int) -> frozenset[int]:
    return frozenset((first + n) % 7 for n in range((last - first) % 7 + 1))


def _en_day(name: str) -> int:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(name[:3].lower())


def _read_weekdays(scan: _Scan) -> frozenset[int]:
    """Sets of weekdays: 周末, weekends, 工作日, weekdays, 周一到周五, mon-fri, every Saturday, 周六或周日."""
    days: set[int] = set()
    for pattern, found_days in ((_WEEKEND, {5, 6}), (_WORKDAYS, {0, 1, 2, 3, 4})):
        for found in list(pattern.finditer(scan.text)):
            days |= found_days
            scan.take(found)
    for found in list(_ZH_DAY_RANGE.finditer(scan.text)):
        days |= _day_set(_ZH_DAY_NUMBER[found[1]], _ZH_DAY_NUMBER[found[2]])
        scan.take(found)
    for found in list(_EN_DAY_RANGE.finditer(scan.text)):
        days |= _day_set(_en_day(found[1]), _en_day(found[2]))
        scan.take(found)
    for found in list(_ZH_EVERY.finditer(scan.text)) + list(_EN_EVERY.finditer(scan.text)):
        name = next(group for group in found.groups() if group)
        days.add(_ZH_DAY_NUMBER[name] if name in _ZH_DAY_NUMBER else _en_day(name))
        scan.take(found)
    named = list(_ZH_NAMED.finditer(scan.text)) + list(_EN_NAMED.finditer(scan.text))
    if len({found[1] for found in named}) >= 2:  # "周六或周日", "Saturday or Sunday": any of them
        for found in named:
            days.add(_ZH_DAY_NUMBER[found[1]] if found[1] in _ZH_DAY_NUMBER else _en_day(found[1]))
            scan.take(found)
    return frozenset(days)


def _read_clause(text: str, language: str, today: date) -> _Reading:
    scan = _Scan(text)
    weekdays = _read_weekdays(scan)
    scan.parts = [(found.start(), str(found.lastgroup)) for found in _PARTS.finditer(scan.text)]
    range_after, range_before = _read_ranges(scan)
    single_after, single_before = _read_singles(scan)
    parts = tuple(part for at, part in scan.parts if scan.text[at] != " ")  # "before noon" was a time
    for found in list(_PARTS.finditer(scan.text)):
        scan.take(found)
    return _Reading(
        day=find_date(scan.text, language, today) if scan.text.strip() else None,
        weekdays=weekdays, parts=parts,
        after=tuple(range_after + single_after), before=tuple(range_before + single_before),
        negated=bool(_NEGATION.search(text)),
    )


def _kept(readings: list[_Reading]) -> list[_Reading]:
    """Drop what the borrower cannot do; "11点前不行", "not before 10" still say when they can."""
    kept = []
    for reading in readings:
        if not reading.negated:
            kept.append(reading)
        elif reading.only_bounds():
            kept.append(_Reading(after=reading.before, before=reading.after))
    return kept


def _window(readings: list[_Reading]) -> tuple[time | None, time | None]:
    """Parts of day give a window; times said explicitly narrow or replace its ends."""
    windows = [PARTS_OF_DAY[part] for reading in readings for part in reading.parts]
    earliest = min((start for start, _ in windows), default=None)
    ends = [end for _, end in windows]
    latest = None if not ends or None in ends else max(end for end in ends if end is not None)
    afters = [t for reading in readings for t in reading.after]
    befores = [t for reading in readings for t in reading.before]
    return (max(afters) if afters else earliest), (min(befores) if befores else latest)


def read_preference(text: str, language: str, today: date) -> Preference:
    """When a borrower would like a visit, from free text in Chinese or English.

    "周六上午", "下周二下午两点以后", "工作日晚上不行，周末都可以", "next Tuesday after 2pm",
    "any weekday afternoon", "the 5th at 10am", "before 11". A specific day is found by
    bot.core.dates.find_date; sets of weekdays and times of day here. Clauses saying what does not
    work are left out. An empty Preference means nothing was recognised.

    Args:
        text: the borrower's message.
        language: "zh" or "en"; both vocabularies are tried.
        today: the borrower's local date.

    Raises:
        ImpossibleDate: the text names a day that does not exist, such as 2月30日.
    """
    text = _A_BIT.sub("些", text)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = normalise_chinese(text)
    readings = _kept([_read_clause(clause, language, today) for clause in _CLAUSE_BREAK.split(text)
                      if clause.strip()])
    earliest, latest = _window(readings)
    return Preference(
        day=next((reading.day for reading in readings if reading.day), None),
        weekdays=frozenset().union(*(reading.weekdays for reading in readings)),
        earliest=earliest, latest=latest,
    )
