"""The response catalogue: both languages everywhere, short enough for SMS."""

from __future__ import annotations

import string

import pytest

from bot.contact.sms import MAX_SEGMENTS, segments
from bot.core import catalog

RESPONSES = catalog.load_responses()
# The longest values each placeholder takes in practice.
LONGEST = {
    "overdue_amount": "¥1,234,567.89", "overdue_instalments": "12 instalments", "day": "September 30, 2026",
    "oldest_due": "September 30, 2026",
    "promise_date": "September 30, 2026", "first_day": "September 30, 2026", "last_day": "December 31, 2026",
    "payment_link": "https://pay.example-bank.test/p/" + "x" * 60, "link_hours": "72",
    "bank_phone": "+86 10 9558 8000", "agent_hours": "09:00-18:00", "key": "8",
    "next_amount": "¥1,234,567.89", "next_due": "September 30, 2026", "monthly": "¥1,234,567.89",
    "lowest": "¥1,234,567.89", "number": "4", "count": "24", "regular": "¥1,234,567.89",
    "first_amount": "¥1,234,567.89", "first_due": "September 30, 2026", "total": "¥1,234,567.89",
    "charges": "¥1,234,567.89", "last_amount": "¥1,234,567.89", "last_due": "September 30, 2026",
    "schedule": "24. September 30, 2026 ¥1,234,567.89", "days": "15", "amount": "¥1,234,567.89",
    "due": "September 30, 2026", "statement_balance": "¥1,234,567.89",
    "until": "September 30, 2026", "masked_phone": "**********0100",
    "address": "4501 Market Street, Suite 2200, San Francisco, CA 94105", "visit_date": "September 30, 2026",
    "visit_time": "10:30 AM", "staff": "Alexandra Montgomery CA-0417, Christopher Fitzgerald CA-0522",
    "agent_name": "m" * 32,  # a console username at its longest
    # the longest meanings bot/dialogue/clarify.py names (utter_meaning_*)
    "first": "that this phone is not the account holder's (you are someone else)",
    "second": "to make a complaint about how we contacted you",
}
# Responses that are only placeholders, filled with text already in the borrower's language.
LANGUAGE_NEUTRAL = {"utter_schedule", "utter_schedule_line", "utter_visit_slot_option"}


@pytest.mark.parametrize("name", sorted(set(RESPONSES) - LANGUAGE_NEUTRAL))
def test_every_response_has_english_and_chinese(name: str) -> None:
    english = catalog.pick(RESPONSES, name, "en")
    chinese = catalog.pick(RESPONSES, name, "zh")
    assert english != chinese
    assert not any("\u4e00" <= c <= "\u9fff" for c in english)
    assert any("\u4e00" <= c <= "\u9fff" for c in chinese)


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_every_response_fits_three_segments_with_long_values(name: str, language: str) -> None:
    text = catalog.render(RESPONSES, name, language, **LONGEST)
    assert "{" not in text, f"unknown placeholder in {name}"
    assert segments(text) <= MAX_SEGMENTS


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_languages_use_the_same_placeholders(name: str) -> None:
    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    assert fields(catalog.pick(RESPONSES, name, "en")) == fields(catalog.pick(RESPONSES, name, "zh"))


def test_unknown_language_falls_back_to_english() -> None:
    assert catalog.pick(RESPONSES, "utter_thank", "fr") == "You're welcome."


VOICED = sorted(name for name, variations in RESPONSES.items() if any(v.get("channel") == "voice" for v in variations))


@pytest.mark.parametrize("name", VOICED)
def test_voice_variations_exist_in_both_languages_and_say_nothing_unspeakable(name: str) -> None:
    english = catalog.pick(RESPONSES, name, "en", "voice")
    chinese = catalog.pick(RESPONSES, name, "zh", "voice")
    assert english != catalog.pick(RESPONSES, name, "en") and chinese != catalog.pick(RESPONSES, name, "zh")
    for text in (english, chinese):
        assert "http" not in text and "Reply" not in text and "回复" not in text


def test_responses_without_a_voice_variation_fall_back_to_the_text_one() -> None:
    assert catalog.pick(RESPONSES, "utter_thank", "zh", "voice") == "不客气。"


@pytest.mark.parametrize(("count", "language", "expected"), [
    (1, "en", "1 instalment"), (2, "en", "2 instalments"), (0, "en", "0 instalments"),
    (1, "zh", "1期"), (3, "zh", "3期"),
])
def test_counted_words_follow_the_languages_plural_rules(count: int, language: str, expected: str) -> None:
    assert catalog.counted(catalog.responses(), "utter_count_instalments", count, language) == expected
