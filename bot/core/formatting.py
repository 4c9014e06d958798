"""Amounts and dates in the borrower's locale, through Babel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from babel.dates import format_date, format_time
from babel.numbers import format_currency

LOCALES = {"zh": "zh_CN", "en": "en_US"}


def locale_for(language: str) -> str:
    """Babel locale for a conversation language ("zh" or "en")."""
    return LOCALES.get(language, "en_US")


def money(amount: Decimal, currency: str, language: str) -> str:
    """¥3,250.00 for zh/CNY, $412.37 for en/USD."""
    return format_currency(amount, currency, locale=locale_for(language))


def spoken_money(amount: Decimal, currency: str, language: str) -> str:
    """For text-to-speech: "824.74 US dollars", "3,500 人民币" (no symbol, no zero cents)."""
    return format_currency(amount, currency, format="#,##0.## ¤¤¤", locale=locale_for(language),
                           currency_digits=False)


def long_date(day: date, language: str) -> str:
    """2026年12月5日 for zh, December 5, 2026 for en."""
    return format_date(day, format="long", locale=locale_for(language))


def short_time(moment: datetime, language: str) -> str:
    """09:00 for zh, 9:00 AM for en (CLDR's narrow no-break space would make an English SMS UCS-2)."""
    return format_time(moment, format="short", locale=locale_for(language)).replace("\u202f", " ")
