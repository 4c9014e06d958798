"""Tests for bot.core.formatting: amounts and dates in the borrower's locale."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.core.formatting import locale_for, long_date, money


@pytest.mark.parametrize(
    ("amount", "currency", "language", "expected"),
    [
        (Decimal("3250.00"), "CNY", "zh", "¥3,250.00"),
        (Decimal("3250"), "CNY", "zh", "¥3,250.00"),
        (Decimal("412.37"), "USD", "en", "$412.37"),
        (Decimal("1234567.5"), "USD", "en", "$1,234,567.50"),
    ],
)
def test_money(amount: Decimal, currency: str, language: str, expected: str) -> None:
    assert money(amount, currency, language) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh", "2026年12月5日"),
        ("en", "December 5, 2026"),
    ],
)
def test_long_date(language: str, expected: str) -> None:
    assert long_date(date(2026, 12, 5), language) == expected


@pytest.mark.parametrize(("language", "expected"), [("zh", "zh_CN"), ("en", "en_US"), ("fr", "en_US")])
def test_locale_for(language: str, expected: str) -> None:
    assert locale_for(language) == expected
