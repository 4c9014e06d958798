"""Repayment plans and grace periods: what the bot may offer, by policy/plans.yml.

Pure functions of the policy, the amount and the day; storing an accepted offer is the
caller's job (``Offer.to_record``).

Rounding: every instalment but the last is rounded half-up to the currency's minor unit
(Babel's ``get_currency_precision``: 2 decimals for CNY and USD, 0 for JPY) and the last
absorbs the remainder, so the instalments always sum exactly to the plan total. A plan's fee
and interest are rounded half-up to the minor unit as well; a minimum first payment is
rounded up, so that it is never below the minimum.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from babel.numbers import get_currency_precision

from bot.core.dates import FULL_WIDTH_DIGITS, MONTH_NAMES
from bot.domain.ledger import PRODUCTS, Account, overdue

ROOT = Path(__file__).resolve().parents[2]
PLANS_FILE = ROOT / "policy" / "plans.yml"
BUCKETS = ("1-30", "31-60", "61-90", "90+")
KINDS = ("plan", "grace")
FIELDS = ("instalment_counts", "fee_percent", "monthly_interest_percent", "min_first_payment",
          "first_due_days", "grace_days_by_bucket", "plans_per_year", "grace_per_year")

_DECIMAL = re.compile(r"\d{1,12}(\.\d{1,6})?")


class PolicyError(ValueError):
    """policy/plans.yml is invalid; the message names the file, the product's field and the fix."""


@dataclass(frozen=True)
class ProductPolicy:
    """One product's plan and grace-period limits."""

    name: str
    instalment_counts: tuple[int, ...]
    fee_percent: Decimal
    monthly_interest_percent: Decimal
    min_first_percent: Decimal
    min_first_at_least: Decimal
    first_due_days: int
    grace_days_by_bucket: dict[str, int]
    plans_per_year: int
    grace_per_year: int

    def min_first(self, total: Decimal) -> Decimal:
        """The smallest first instalment allowed on a plan of ``total``."""
        return max(total * self.min_first_percent / 100, self.min_first_at_least)


@dataclass(frozen=True)
class Instalment:
    """One payment of a plan: how much, by when."""

    due: date
    amount: Decimal


@dataclass(frozen=True)
class Offer:
    """A plan or a grace period as offered; the schedule sums exactly to principal + fee + interest."""

    kind: str
    count: int
    principal: Decimal
    fee: Decimal
    interest: Decimal
    schedule: tuple[Instalment, ...]

    def __post_init__(self) -> None:
        # Stored offers come back through here, so a corrupt record fails loudly instead of misleading.
        if self.kind not in KINDS:
            raise ValueError(f"offer kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.schedule or self.count != len(self.schedule):
            raise ValueError(f"offer count {self.count} does not match its {len(self.schedule)} instalments")
        if self.total != self.principal + self.fee + self.interest:
            raise ValueError(f"instalments sum to {self.total}, not principal + fee + interest")

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.schedule), Decimal(0))

    @property
    def first_due(self) -> date:
        return self.schedule[0].due

    @property
    def last_due(self) -> date:
        return self.schedule[-1].due

    @property
    def regular(self) -> Decimal:
        """The usual monthly amount: the second instalment, since the first may be a larger minimum."""
        return self.schedule[min(1, len(self.schedule) - 1)].amount

    @property
    def largest(self) -> Decimal:
        return max(i.amount for i in self.schedule)

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict: amounts as decimal strings, dates as YYYY-MM-DD."""
        return {
            "kind": self.kind, "count": self.count, "principal": f"{self.principal:f}", "fee": f"{self.fee:f}",
            "interest": f"{self.interest:f}",
            "schedule": [{"due": i.due.isoformat(), "amount": f"{i.amount:f}"} for i in self.schedule],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Offer:
        """The offer that ``to_record`` wrote."""
        return cls(
            kind=record["kind"], count=int(record["count"]), principal=Decimal(record["principal"]),
            fee=Decimal(record["fee"]), interest=Decimal(record["interest"]),
            schedule=tuple(Instalment(date.fromisoformat(i["due"]), Decimal(i["amount"])) for i in record["schedule"]),
        )


# --- the policy file ---------------------------------------------------------------------------


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def load_plan_policy(path: Path = PLANS_FILE) -> dict[str, ProductPolicy]:
    """Read and check the plan policy of every product in the ledger.

    Raises:
        PolicyError: naming the file, the product's field and what it must be.
    """
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{label}: not valid YAML: {exc}") from None
    try:
        return _policy(config)
    except _FieldError as exc:
        raise PolicyError(f"{label}: {exc.field}: {exc}") from None


def _policy(config: Any) -> dict[str, ProductPolicy]:
    _keys(config, "top level", ("rounding", "products"))
    if config["rounding"] != "ROUND_HALF_UP":
        raise _FieldError("rounding", "must be ROUND_HALF_UP, the only rule bot/domain/plans.py implements")
    _keys(config["products"], "products", PRODUCTS)
    return {name: _product(name, config["products"][name]) for name in PRODUCTS}


def _product(name: str, spec: Any) -> ProductPolicy:
    _keys(spec, name, FIELDS)
    first = spec["min_first_payment"]
    _keys(first, f"{name}.min_first_payment", ("percent", "at_least"))
    percent = _decimal(first["percent"], f"{name}.min_first_payment.percent")
    if percent > 100:
        raise _FieldError(f"{name}.min_first_payment.percent", "must be at most 100")
    return ProductPolicy(
        name=name,
        instalment_counts=_counts(spec["instalment_counts"], f"{name}.instalment_counts"),
        fee_percent=_decimal(spec["fee_percent"], f"{name}.fee_percent"),
        monthly_interest_percent=_decimal(spec["monthly_interest_percent"], f"{name}.monthly_interest_percent"),
        min_first_percent=percent,
        min_first_at_least=_decimal(first["at_least"], f"{name}.min_first_payment.at_least"),
        first_due_days=_whole(spec["first_due_days"], f"{name}.first_due_days", least=1),
        grace_days_by_bucket=_grace(spec["grace_days_by_bucket"], f"{name}.grace_days_by_bucket"),
        plans_per_year=_whole(spec["plans_per_year"], f"{name}.plans_per_year", least=0),
        grace_per_year=_whole(spec["grace_per_year"], f"{name}.grace_per_year", least=0),
    )


def _keys(value: Any, where: str, expected: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise _FieldError(where, f"must be a mapping with the keys {', '.join(expected)}")
    missing = [k for k in expected if k not in value]
    unknown = sorted(str(k) for k in value if k not in expected)
    if missing:
        raise _FieldError(where, f"lacks {', '.join(missing)}")
    if unknown:
        raise _FieldError(where, f"has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(expected)}")


def _decimal(value: Any, where: str) -> Decimal:
    # Strings only: YAML would read 0.1 as a binary float, and money needs the exact decimal.
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _FieldError(where, f'must be a non-negative decimal written as a string, e.g. "2.0", not {value!r}')
    return Decimal(value)


def _whole(value: Any, where: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _FieldError(where, f"must be a whole number ≥ {least}, not {value!r}")
    return value


def _counts(value: Any, where: str) -> tuple[int, ...]:
    whole = isinstance(value, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in value)
    if not whole or not value or min(value) < 2 or len(set(value)) != len(value):
        raise _FieldError(where, "must be a list of distinct whole numbers ≥ 2")
    return tuple(sorted(value))


def _grace(value: Any, where: str) -> dict[str, int]:
    _keys(value, where, BUCKETS)
    return {b: _whole(value[b], f"{where}.{b}", least=0) for b in BUCKETS}


# --- schedules ---------------------------------------------------------------------------------


def _minor_unit(currency: str) -> Decimal:
    """0.01 for CNY and USD, 1 for JPY."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def _check_minor_units(amount: Decimal, currency: str) -> None:
    if amount != amount.quantize(_minor_unit(currency)):
        raise ValueError(f"{amount} has more decimals than {currency} allows")


def _add_months(day: date, months: int) -> date:
    """The same day of the month, ``months`` later; the month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _split(total: Decimal, count: int, unit: Decimal) -> list[Decimal]:
    equal = (total / count).quantize(unit, rounding=ROUND_HALF_UP)
    return [equal] * (count - 1) + [total - equal * (count - 1)]


def schedule(total: Decimal, count: int, first_due: date, currency: str, min_first: Decimal) -> tuple[Instalment, ...]:
    """Split ``total`` into ``count`` monthly instalments, the first due on ``first_due``.

    Equal instalments rounded half-up to the currency's minor unit, the last absorbing the
    remainder. When that equal amount is below ``min_first``, the first instalment is
    ``min_first`` rounded up to the minor unit and the others split the rest the same way.

    Raises:
        ValueError: if ``total`` is not a positive amount in the currency's minor unit, or no
            such schedule has every instalment above zero (``min_first`` ≥ ``total``, say).
    """
    if count < 1:
        raise ValueError(f"a schedule needs at least one instalment, not {count}")
    if total <= 0:
        raise ValueError(f"a schedule needs a positive total, not {total}")
    _check_minor_units(total, currency)
    unit = _minor_unit(currency)
    amounts = _split(total, count, unit)
    if count > 1 and amounts[0] < min_first:
        first = min_first.quantize(unit, rounding=ROUND_CEILING)
        if first >= total:
            raise ValueError(f"a first payment of {first} leaves nothing of {total} for the other instalments")
        amounts = [first, *_split(total - first, count - 1, unit)]
    if min(amounts) <= 0:
        raise ValueError(f"{total} {currency} is too small to split into {count} instalments")
    return tuple(Instalment(_add_months(first_due, n), amount) for n, amount in enumerate(amounts))


# --- how late, and what may be offered ---------------------------------------------------------


def days_past_due(account: Account, today: date) -> int:
    """Days since the oldest unpaid instalment fell due; 0 when nothing is overdue."""
    oldest = overdue(account, today).oldest_due
    return (today - oldest).days if oldest else 0


def bucket(dpd: int) -> str:
    """The days-past-due bucket: "current", "1-30", "31-60", "61-90" or "90+"."""
    if dpd < 0:
        raise ValueError(f"days past due cannot be negative ({dpd})")
    if dpd == 0:
        return "current"
    for name, upto in (("1-30", 30), ("31-60", 60), ("61-90", 90)):
        if dpd <= upto:
            return name
    return "90+"


def max_grace_days(policy: ProductPolicy, dpd: int) -> int:
    """The longest grace period allowed at ``dpd`` days past due; 0 when none (or nothing is late)."""
    return policy.grace_days_by_bucket.get(bucket(dpd), 0)


def _plan(policy: ProductPolicy, amount: Decimal, currency: str, today: date, count: int) -> Offer | None:
    unit = _minor_unit(currency)
    fee = (amount * policy.fee_percent / 100).quantize(unit, rounding=ROUND_HALF_UP)
    interest = (amount * policy.monthly_interest_percent / 100 * count).quantize(unit, rounding=ROUND_HALF_UP)
    total = amount + fee + interest
    first_due = today + timedelta(days=policy.first_due_days)
    try:
        instalments = schedule(total, count, first_due, currency, policy.min_first(total))
    except ValueError:
        return None
    return Offer("plan", count, amount, fee, interest, instalments)


def plan_offers(
    policy: ProductPolicy, amount: Decimal, currency: str, today: date, plans_last_year: int
) -> list[Offer]:
    """One plan per instalment count the policy allows, fewest instalments first.

    Empty once ``policy.plans_per_year`` plans were accepted in the last 365 days, or when
    nothing is owed. A count whose schedule is impossible (too small an amount) is left out.

    Raises:
        ValueError: if ``amount`` has more decimals than the currency allows.
    """
    if plans_last_year >= policy.plans_per_year or amount <= 0:
        return []
    _check_minor_units(amount, currency)
    offers = (_plan(policy, amount, currency, today, count) for count in policy.instalment_counts)
    return [offer for offer in offers if offer]


def grace_offer(
    policy: ProductPolicy, amount: Decimal, currency: str, dpd: int, today: date, graces_last_year: int,
    until: date | None = None,
) -> Offer | None:
    """A grace period: the whole ``amount`` in one payment, due later than now.

    Due on ``until`` when the borrower asked for a day within the bucket's limit, else on the
    last day allowed. None when nothing is overdue or owed, the yearly limit is reached, the
    bucket allows no grace, or ``until`` is not 1 to the bucket's maximum days from today.
    """
    days = max_grace_days(policy, dpd)
    if days == 0 or amount <= 0 or graces_last_year >= policy.grace_per_year:
        return None
    _check_minor_units(amount, currency)
    due = until or today + timedelta(days=days)
    if not 1 <= (due - today).days <= days:
        return None
    return Offer("grace", 1, amount, Decimal(0), Decimal(0), (Instalment(due, amount),))


def shortest_affordable(offers: list[Offer], monthly: Decimal) -> Offer | None:
    """The offer with the fewest instalments whose largest instalment is within ``monthly``."""
    fitting = [offer for offer in offers if offer.largest <= monthly]
    return min(fitting, key=lambda offer: offer.count) if fitting else None


# --- amounts in borrowers' words ---------------------------------------------------------------

# Stands for every per-month phrase ("每个月", "一个月", "a month", "/mo", "monthly") once normalised.
_MONTHLY = "§"
# Characters before a number that say what it is; bounded, so that a long message stays linear.
_CONTEXT = 60
# A bare number up to 31, with no currency or per-month word, is as likely a day, an hour or a count.
_SMALLEST_BARE = 32

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万]+")
_EN_UNITS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
             "seventeen eighteen nineteen").split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_WORDS = {w: n for n, w in enumerate(_EN_UNITS, start=1)} | {w: n * 10 for n, w in enumerate(_EN_TENS, start=2)}
_EN_WORD = rf"(?:{'|'.join(_EN_WORDS)}|hundred|thousand)\b"
_EN_NUMERAL = re.compile(rf"\b{_EN_WORD}(?:(?:[\s-]+and)?[\s-]+{_EN_WORD})*\b")
_FULL_WIDTH = FULL_WIDTH_DIGITS | str.maketrans("￥＄．", "¥$.")
_PER_MONTH = re.compile(
    r"每\s*个?\s*月|(?<![第\d十零〇])[一1]\s*个\s*月|每\s*期|月供"
    r"|(?:\b(?:a|per|each|every)\s+|/\s*)(?:month|mo|mth)\b|\bmonthly\b"
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?:\s*(k\b|千|万|百)(\d(?![\d.]))?)?")
_MULTIPLIERS = {"k": 1000, "千": 1000, "万": 10000, "百": 100}
# Counts of months or payments, days of the month, times, years, percentages, dates and ranges.
_NOT_AMOUNT_AFTER = re.compile(
    r"\s*(?:[个月期号號日点點时時年天周岁次笔%％]|分钟"
    r"|(?:st|nd|rd|th|am|pm|a\.m|p\.m|o'?clock|months?|mos?|mths?|payments?|instal?l?ments?|times|days?|weeks?"
    r"|years?|yrs?|hours?|hrs?|minutes?|mins?|percent|x)\b|[:/-]\s*\d)"
)
# Instalment numbers (第3期), phone prefixes, time ranges, and times or years after at, in or a month's name.
_NOT_AMOUNT_BEFORE = re.compile(
    rf"(?:\d\s*[:/-]|[第#+]|\b(?:at|in|by|since|until|till|may|{MONTH_NAMES})\.?)\s*$"
)
_CURRENCY_BEFORE = re.compile(r"(?:[¥$]|\b(?:rmb|usd|cny)|人民币)\s*$")
_CURRENCY_AFTER = re.compile(r"\s*(?:[元块塊圆刀$¥]|人民币|美元|美金|(?:rmb|yuan|usd|cny|dollars?|bucks?)\b)")
# An amount right after these is what the borrower earns or owes, not what they offer to pay.
_NOT_OFFER = re.compile(r"\b(?:earn\w*|salary|income|wages?|owed?)\b|工资|收入|薪|挣|赚|欠")
_CLAUSE_END = re.compile(r"[,，。.!！?？;；]")


@dataclass(frozen=True)
class _Candidate:
    value: Decimal
    score: int  # 2 for a per-month phrase, +1 for a currency sign or word


def cn_value(numeral: str) -> int | None:
    """八百 -> 800, 一千五 -> 1500, 两万五 -> 25000, 一百零五 -> 105; None for 五六百 or 千万."""
    total, section, digit, unit, zero = 0, 0, None, 0, False
    for char in numeral:
        if char in "零〇":
            zero = True
            continue
        if char in _CN_DIGITS:
            if digit is not None:
                return None  # 五六百: a range, not one amount
            digit = _CN_DIGITS[char]
            continue
        if char == "万":
            if digit is None and not section:
                return None  # 万一 ("in case")
            total, section = (total + section + (digit or 0)) * 10000, 0
        else:
            if digit is None and (char != "十" or total or section):
                return None  # 千万 ("by all means")
            section += (digit or 1) * _CN_UNITS[char]
        unit, digit, zero = _CN_UNITS.get(char, 10000), None, False
    if digit is None:
        return total + section
    # Spoken Chinese drops the last unit: 一千五 is 1500 and 两万五 25000, but 一百零五 is 105.
    return total + section + (digit * unit // 10 if unit and not zero else digit)


def _en_value(words: list[str]) -> int | None:
    """three hundred fifty -> 350, fifteen hundred -> 1500; None for "one two"."""
    total, current = 0, 0
    for word in words:
        if word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total, current = total + (current or 1) * 1000, 0
        elif word in _EN_WORDS:
            value = _EN_WORDS[word]
            if current % 100 and (value >= 10 or current % 10):
                return None
            current += value
    return total + current


def _digits(match: re.Match[str], value: int | None) -> str:
    return match.group() if value is None else str(value)


def _normalise(text: str) -> str:
    """Lower case, ASCII digits, Chinese and English number words as digits, per-month phrases as one mark."""
    text = _PER_MONTH.sub(f" {_MONTHLY} ", text.translate(_FULL_WIDTH).lower())
    text = _CN_NUMERAL.sub(lambda m: _digits(m, cn_value(m.group())), text)
    text = _EN_NUMERAL.sub(lambda m: _digits(m, _en_value(re.split(r"[\s-]+", m.group()))), text)
    return _THOUSANDS.sub("", text)


def _candidate(text: str, match: re.Match[str]) -> _Candidate | None:
    whole, fraction, unit, tail = match.groups()
    before, after = text[max(0, match.start() - _CONTEXT): match.start()], text[match.end():][:_CONTEXT]
    if len(whole) > 9 or (len(whole) > 1 and whole[0] == "0") or (fraction and len(fraction) > 2):
        return None  # phone and account numbers, or a decimal that is not money
    if _NOT_AMOUNT_AFTER.match(after) or _NOT_AMOUNT_BEFORE.search(before):
        return None
    if _NOT_OFFER.search(re.split(r"\d", before)[-1]):
        return None
    multiplier = _MULTIPLIERS.get(unit, 1)
    value = Decimal(f"{whole}.{fraction}" if fraction else whole) * multiplier + Decimal(tail or 0) * multiplier / 10
    currency = _CURRENCY_AFTER.match(after)
    rest = after[currency.end():] if currency else after
    monthly = rest.lstrip().startswith(_MONTHLY) or _MONTHLY in _CLAUSE_END.split(before)[-1]
    has_currency = bool(currency or _CURRENCY_BEFORE.search(before))
    return _Candidate(value, 2 * monthly + has_currency)


def read_amount(text: str, monthly_only: bool = False) -> Decimal | None:
    """The amount of money a borrower states, in Chinese or English; None when unsure.

    "我每月只能还800", "每个月八百块", "I can do $150 a month", "1.5k" all give an amount.
    A number next to a currency sign or word, or to a per-month phrase, wins over a bare one;
    counts of months or payments ("6期", "12 payments"), days ("15号", "the 15th"), times
    ("2pm", "3点"), years and numbers over 9 digits never count. Two different amounts at the
    same level of confidence give None. With ``monthly_only``, only an amount said to be
    per month counts.
    """
    normal = _normalise(text)
    found = [c for m in _NUMBER.finditer(normal) if (c := _candidate(normal, m))]
    found = [c for c in found if c.value > 0 and (c.score or c.value >= _SMALLEST_BARE)]
    if not found:
        return None
    best = max(c.score for c in found)
    if monthly_only and best < 2:  # "split the 3000 over 6 months" states no monthly budget
        return None
    values = {c.value for c in found if c.score == best}
    if len(values) != 1:
        return None
    value = values.pop()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
