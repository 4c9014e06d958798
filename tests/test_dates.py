"""Tests for bot.core.dates: dates in borrowers' Chinese and English messages.

Relative dates are read as of Sunday 2026-11-29.
"""

from __future__ import annotations

from datetime import date

import pytest

from bot.core.dates import ImpossibleDate, birth_date_candidates, find_date, id_last4_candidates, normalise_chinese

TODAY = date(2026, 11, 29)


def test_today_is_a_sunday() -> None:
    assert TODAY.isoweekday() == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明天", date(2026, 11, 30)),
        ("后天", date(2026, 12, 1)),
        ("3天后", date(2026, 12, 2)),
        ("三天后", date(2026, 12, 2)),
        ("下周五", date(2026, 12, 4)),
        ("周五", date(2026, 12, 4)),
        ("星期三", date(2026, 12, 2)),
        ("礼拜一", date(2026, 11, 30)),
        ("12月5号", date(2026, 12, 5)),
        ("十二月五日", date(2026, 12, 5)),
        ("十五号", date(2026, 12, 15)),
        ("29号", date(2026, 11, 29)),
        ("下个月5号", date(2026, 12, 5)),
        ("月底", date(2026, 11, 30)),
        ("2026年12月3日", date(2026, 12, 3)),
        ("1月5日", date(2027, 1, 5)),
        ("我明天还", date(2026, 11, 30)),
        ("下周五可以还款", date(2026, 12, 4)),
        ("我还500，5号", date(2026, 12, 5)),
    ],
)
def test_find_date_zh(text: str, expected: date) -> None:
    assert find_date(text, "zh", TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow", date(2026, 11, 30)),
        ("I can pay tomorrow", date(2026, 11, 30)),
        ("i can pay it the day after tomorrow", date(2026, 12, 1)),
        ("next friday", date(2026, 12, 4)),
        ("dec 5", date(2026, 12, 5)),
        ("I'll pay on dec 5", date(2026, 12, 5)),
        ("on the 15th", date(2026, 12, 15)),
        ("december 5th", date(2026, 12, 5)),
        ("12/5", date(2026, 12, 5)),
        ("in 3 days", date(2026, 12, 2)),
        ("k i wil pay tmrw", date(2026, 11, 30)),
        ("i can do it on the twentieth", date(2026, 12, 20)),
        ("on the twenty-first", date(2026, 12, 21)),
    ],
)
def test_find_date_en(text: str, expected: date) -> None:
    assert find_date(text, "en", TODAY) == expected


def test_chinese_text_is_read_as_chinese_in_an_english_conversation() -> None:
    assert find_date("12月5号", "en", TODAY) == date(2026, 12, 5)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("2月30日", "zh"),
        ("二月三十号", "zh"),
        ("2026年4月31日", "zh"),
        ("feb 30", "en"),
        ("the 31st of april", "en"),
        ("june 31", "en"),
        ("0日", "zh"),
        ("32日", "zh"),
    ],
)
def test_impossible_date_raises(text: str, language: str) -> None:
    with pytest.raises(ImpossibleDate):
        find_date(text, language, TODAY)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好", "zh"),
        ("我没钱", "zh"),
        ("好的", "zh"),
        ("hello", "en"),
        ("no idea", "en"),
        ("ok", "en"),
    ],
)
def test_no_date_is_none(text: str, language: str) -> None:
    assert find_date(text, language, TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("May I pay tomorrow?", date(2026, 11, 30)),
        ("I decided to pay on the 5th", date(2026, 12, 5)),
    ],
)
def test_month_prefix_inside_a_word_is_not_a_month(text: str, expected: date) -> None:
    assert find_date(text, "en", TODAY) == expected


def test_amount_before_month_is_not_the_day() -> None:
    assert find_date("I will pay 40 on dec 5", "en", TODAY) == date(2026, 12, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("十五号", "15日"),
        ("二十三", "23"),
        ("一九八五", "1985"),
        ("星期三", "周3"),
        ("１２月", "12月"),
    ],
)
def test_normalise_chinese(text: str, expected: str) -> None:
    assert normalise_chinese(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985年3月12日", {date(1985, 3, 12)}),
        ("我生日是85年3月12号", {date(1985, 3, 12)}),
        ("一九八五年三月十二号", {date(1985, 3, 12)}),
        ("19850312", {date(1985, 3, 12)}),
        ("1985-03-12", {date(1985, 3, 12)}),
        ("03/12/1985", {date(1985, 3, 12), date(1985, 12, 3)}),
        ("12/03/1985", {date(1985, 3, 12), date(1985, 12, 3)}),
        ("25/12/1985", {date(1985, 12, 25)}),
        ("march 12 1985", {date(1985, 3, 12)}),
        ("12 march 1985", {date(1985, 3, 12)}),
        ("March 12, 1985", {date(1985, 3, 12)}),
        ("我不记得", set()),
    ],
)
def test_birth_date_candidates(text: str, expected: set[date]) -> None:
    assert birth_date_candidates(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("567x", {"567X"}),
        ("561X", {"561X"}),
        ("身份证后四位567x", {"567X"}),
        ("后四位是一二三四", {"1234"}),
        ("1234 5678", {"1234", "5678"}),
        ("12345", set()),
        ("123456789012345678", set()),
        ("abc1234", set()),
        ("1234a", set()),
        ("12x4", set()),
    ],
)
def test_id_last4_candidates(text: str, expected: set[str]) -> None:
    assert id_last4_candidates(text) == expected
