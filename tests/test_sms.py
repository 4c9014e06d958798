"""Tests for bot.contact.sms: segment counting, edge keywords and packing replies into SMS."""

from __future__ import annotations

import pytest

from bot.contact.sms import keyword, pack, segments


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm_segments(length: int, expected: int) -> None:
    assert segments("a" * length) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("€" * 80, 1), ("€" * 81, 2), ("a" * 159 + "{", 2), ("a" * 158 + "[", 1)],
)
def test_extension_characters_count_double(text: str, expected: int) -> None:
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_chinese_segments(length: int, expected: int) -> None:
    assert segments("还" * length) == expected


def test_one_non_gsm_character_switches_to_ucs2() -> None:
    assert segments("a" * 70 + "还") == 2


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", " Stop. ", "Stop!", "退订", "退订。", "TD", "td", "unsubscribe", "STOPALL", "Cancel", "quit"],
)
def test_opt_out_keywords(body: str) -> None:
    assert keyword(body) == "opt_out"


@pytest.mark.parametrize("body", ["START", "start", "unstop", "Unstop!"])
def test_opt_in_keywords(body: str) -> None:
    assert keyword(body) == "opt_in"


@pytest.mark.parametrize("body", ["HELP", "help", "Info", "帮助", "帮助！"])
def test_help_keywords(body: str) -> None:
    assert keyword(body) == "help"


@pytest.mark.parametrize("body", ["stop calling me", "YES", "yes", "please help", "", "我要退订短信", "s t o p"])
def test_not_a_keyword(body: str) -> None:
    assert keyword(body) is None


def test_pack_joins_short_replies() -> None:
    assert pack(["Hello.", "You owe $412.37.", "Reply STOP to opt out."]) == [
        "Hello.\nYou owe $412.37.\nReply STOP to opt out."
    ]


def test_pack_drops_blanks() -> None:
    assert pack(["", "  hi  ", "\n", "there"]) == ["hi\nthere"]


def test_pack_of_nothing_is_empty() -> None:
    assert pack(["", "   "]) == []


def test_pack_splits_over_three_segments() -> None:
    first, second, third = "a" * 200, "b" * 200, "c" * 200

    packed = pack([first, second, third])

    assert packed == [first + "\n" + second, third]
    assert [segments(p) for p in packed] == [3, 2]


def test_pack_respects_a_lower_limit() -> None:
    assert pack(["a" * 100, "b" * 100], limit=1) == ["a" * 100, "b" * 100]


def test_pack_splits_an_over_long_reply_between_sentences() -> None:
    reply = "这是一个很长的句子。" * 30
    packed = pack([reply])
    assert all(segments(text) <= 3 for text in packed)
    assert "".join(packed).replace("\n", "") == reply


def test_pack_cuts_a_reply_without_sentences_where_it_must() -> None:
    packed = pack(["x" * 2000])
    assert [segments(text) for text in packed] == [3, 3, 3, 3, 2]
    assert "".join(packed) == "x" * 2000
