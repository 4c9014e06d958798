"""Dates in borrowers' free text, in Chinese and English.

dateparser does the parsing. Chinese needs a light normalisation first:
dateparser reads "5日" as "five days" and does not know "号", "下周五" or
Chinese numerals, all of which borrowers write every day.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from dateparser.search import search_dates

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_WEEKDAYS = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "日": 6, "天": 6, "末": 5}
# Full-width digits (０-９) to ASCII, a str.translate table.
FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十]+")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
# English month names and their abbreviations, except "may", which is also a verb.
MONTH_NAMES = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?"
                r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
# "May" is a month only beside a day number: "may 5", "5th of may", not "may I pay".
_MONTH_DAY = re.compile(
    rf"\b(?P<m1>{MONTH_NAMES}|may)\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?!\d)"
    rf"|(?<!\d)(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{MONTH_NAMES}|may)\b",
    re.I,
)
# SMS and speech-to-text spellings: "tmrw", "on the twentieth", "the twenty first".
_TOMORROW = re.compile(r"\b(?:tmrw|tmr|tmro|tmrow|tomoro|tomorow|tommorow|tommorrow|2morrow|2moro|2mrw)\b", re.I)
_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
_ORDINAL_WORDS = {
    **{w: n for n, w in enumerate(_UNITS, 1)},
    **{w: n for n, w in enumerate(("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                                   "sixteenth", "seventeenth", "eighteenth", "nineteenth"), 10)},
    "twentieth": 20, **{f"twenty {w}": 20 + n for n, w in enumerate(_UNITS, 1)},
    "thirtieth": 30, "thirty first": 31,
}
_ORDINAL_WORD = re.compile(r"\b(?:the|on)\s+(" + "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True)
                                                   ).replace(" ", r"[\s-]") + r")\b", re.I)
_ORDINAL_DAY = re.compile(r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b", re.I)
_MONTH_WORD = re.compile(rf"\b(?:{MONTH_NAMES})\b", re.I)


def _cn_number(text: str) -> str:
    """一九八五 -> 1985, 十五 -> 15, 二十三 -> 23."""
    if "十" not in text:
        return "".join(str(_DIGITS[c]) for c in text)
    tens, _, units = text.partition("十")
    return str((_DIGITS[tens] if tens else 1) * 10 + (_DIGITS[units] if units else 0))


def normalise_chinese(text: str) -> str:
    """Arabic numerals, 日 for 号, 周 for 星期/礼拜, full-width digits folded."""
    text = text.translate(FULL_WIDTH_DIGITS)
    text = _CN_NUMBER.sub(lambda m: _cn_number(m.group()), text)
    text = re.sub(r"(?<=\d)[号號]", "日", text)
    return re.sub("星期|礼拜|禮拜", "周", text)


class ImpossibleDate(ValueError):
    """The borrower named a day that does not exist, such as 2月30日."""


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _real_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ImpossibleDate(f"{year}-{month}-{day}") from None


def _next_day_of_month(day: int, today: date) -> date | None:
    """The next date falling on this day of the month, today included."""
    if not 1 <= day <= 31:
        raise ImpossibleDate(f"day {day} of a month")
    year, month = today.year, today.month
    for _ in range(3):
        if day <= calendar.monthrange(year, month)[1] and date(year, month, day) >= today:
            return date(year, month, day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _chinese_explicit(text: str, today: date) -> date | None:
    if m := re.search(r"(\d{4})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})", text):
        return _real_date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.search(r"(\d{1,2})\s*月\s*(\d{1,2})\s*日?", text):
        found = _real_date(today.year, int(m[1]), int(m[2]))
        return found if found >= today else _safe_date(today.year + 1, found.month, found.day)
    if m := re.search(r"下个?月\s*(\d{1,2})\s*日", text):
        first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        return _real_date(first.year, first.month, int(m[1]))
    if m := re.search(r"(\d{1,2})\s*日", text):
        return _next_day_of_month(int(m[1]), today)
    if m := re.search(r"下个?周([1-6日天末])", text):
        next_monday = today + timedelta(days=7 - today.weekday())
        return next_monday + timedelta(days=_WEEKDAYS[m[1]])
    if m := re.search(r"周([1-6日天末])", text):
        return today + timedelta(days=(_WEEKDAYS[m[1]] - today.weekday()) % 7)
    if m := re.search(r"(\d{1,2})\s*月底", text):
        month = int(m[1])
        year = today.year if month >= today.month else today.year + 1
        return _real_date(year, month, calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0)
    if "月底" in text:
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    return None


def _english_explicit(text: str, today: date) -> date | None:
    if found := _MONTH_DAY.search(text):
        return _month_day(found, text, today)
    if _MONTH_WORD.search(text):
        return None
    if m := _ORDINAL_DAY.search(text):
        return _next_day_of_month(int(m[1]), today)
    return None


def _month_day(found: re.Match[str], text: str, today: date) -> date:
    """"dec 5", "5th of december 2026": the next such day, or that year's; "feb 30" is refused."""
    month = _MONTHS.index((found["m1"] or found["m2"]).lower()[:3]) + 1
    day = int(found["d1"] or found["d2"])
    if year := re.search(r"(?<!\d)(\d{4})(?!\d)", text):
        return _real_date(int(year[1]), month, day)
    this_year = _real_date(today.year, month, day) if (month, day) != (2, 29) else _safe_date(today.year, 2, 29)
    if this_year and this_year >= today:
        return this_year
    return _real_date(today.year + 1, month, day)


def find_date(text: str, language: str, today: date) -> date | None:
    """The first date a borrower means in ``text``, relative to ``today``.

    Args:
        text: the borrower's message.
        language: "zh" or "en"; both are tried, this one first.
        today: the borrower's local date.

    Raises:
        ImpossibleDate: the text names a day that does not exist.
    """
    if language == "zh" or re.search(r"[\u4e00-\u9fff]", text):
        text = normalise_chinese(text)
        explicit = _chinese_explicit(text, today)
    else:
        text = normalise_english(text)
        explicit = _english_explicit(text, today)
    if explicit:
        return explicit
    text = re.sub(r"\bmay\b", "can", text, flags=re.I)  # the verb; "may 5" was taken above
    text = re.sub(r"\b(the )?day after tomorrow\b", "in 2 days", text, flags=re.I)  # else read as "tomorrow"
    languages = ["zh", "en"] if language == "zh" else ["en", "zh"]
    settings = {
        "RELATIVE_BASE": datetime.combine(today, datetime.min.time()),
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "YMD" if language == "zh" else "MDY",
    }
    found = search_dates(text, languages=languages, settings=settings)  # type: ignore[arg-type]
    return found[0][1].date() if found else None


def normalise_english(text: str) -> str:
    """"tmrw" as tomorrow and "the twentieth" as the 20th, for the parsers."""
    def day(found: re.Match[str]) -> str:
        words = " ".join(re.split(r"[-\s]+", found[1].lower()))
        return f"the {_ORDINAL_WORDS[words]}th"

    return _ORDINAL_WORD.sub(day, _TOMORROW.sub("tomorrow", text))


def _full_year(year: str) -> int:
    """85 -> 1985, 05 -> 2005: borrowers are adults, so a two-digit year above 30 is last century."""
    return int(year) if len(year) == 4 else 1900 + int(year) if int(year) > 30 else 2000 + int(year)


def birth_date_candidates(text: str) -> set[date]:
    """Every date a borrower could mean when stating a birth date.

    Numeric dates such as 03/12/1985 are read both day-first and month-first,
    since either order is common; verification needs one to match exactly.
    """
    text = normalise_chinese(text)
    found: set[date | None] = set()
    for y, m, d in re.findall(r"(?<!\d)(\d{4})\s*[年./-]?\s*(\d{1,2})\s*[月./-]?\s*(\d{1,2})(?!\d)", text):
        found.add(_safe_date(int(y), int(m), int(d)))
    for y, m, d in re.findall(r"(?<!\d)(\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})", text):  # 85年3月12号
        found.add(_safe_date(_full_year(y), int(m), int(d)))
    for a, b, y in re.findall(r"(?<!\d)(\d{1,2})[./-](\d{1,2})[./-](\d{2}|\d{4})(?!\d)", text):
        year = _full_year(y)
        found.update({_safe_date(year, int(a), int(b)), _safe_date(year, int(b), int(a))})
    if not any(found) and (_MONTH_WORD.search(text) or _MONTH_DAY.search(text)):
        parsed = search_dates(text, languages=["en"], settings={"PREFER_DAY_OF_MONTH": "first"})
        found.update(d.date() for _, d in parsed or [])
    return {d for d in found if d is not None}


def id_last4_candidates(text: str) -> set[str]:
    """Four-character groups that could be the end of an ID card number."""
    text = normalise_chinese(text).upper()
    return set(re.findall(r"(?<![\dA-Z])(\d{3}[\dX])(?![\dA-Z])", text))
