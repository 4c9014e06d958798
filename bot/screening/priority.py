"""Screening: from the repayment records to a ranked collection list, a strategy per account and a report.

Everything per row or per account is a polars expression (vectorised, multi-threaded), so a ledger
of a million accounts is screened in seconds. Python loops run only over things there are few of:
checks, rules, time zones, currencies, buckets.

Amounts are parsed into integer ten-thousandths (``_UNITS``) so that sums are exact; they are
turned into floats only for the list and the report.

Metrics use the instalments due before the screening day (``as_of``), as bot.domain.ledger.overdue does;
amounts paid are taken as recorded. An account with nothing due yet has an on-time rate and a
paid ratio of 1 (it has missed nothing).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import numpy as np
import polars as pl
import yaml
from babel.numbers import get_currency_precision, is_currency
from tqdm import tqdm

from bot.core import keys
from bot.domain.handoffs import OUTCOMES as AGENT_OUTCOMES
from bot.domain.ledger import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ID_PATTERN,
    AMOUNT_PATTERN,
    E164_PATTERN,
    ID_LAST4_PATTERN,
    INSTALLMENT_COLUMNS,
    ISO_DATE_PATTERN,
    LANGUAGES,
    MAX_FIELD_LENGTH,
    OPTIONAL_INSTALLMENT_COLUMNS,
    PRODUCTS,
    REASONS,
    REVOLVING_PRODUCTS,
    SIGNED_AMOUNT_PATTERN,
    RowError,
)
from bot.screening import reasons
from bot.screening.model import FEATURE_NAMES, PriorityModel, matrix

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES_FILE = ROOT / "policy" / "strategies.yml"
TEMPLATES = Path(__file__).resolve().parent / "templates"
STRATEGIES = ("gentle_sms", "sms_then_call", "hardship_offer", "visit_proposal", "agent_review")
# "current" and bot.domain.plans.BUCKETS (not imported: bot.domain.plans pulls in dateparser, about a second).
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
# bot.field.visits.OUTCOMES (not imported: bot.field.visits pulls in dateparser through bot.domain.booking).
VISIT_OUTCOMES = ("paid_on_spot", "plan", "promise", "follow_up_visit", "legal_review")
# What each metric a rule may test holds: a number, a yes/no, or a bucket name.
METRICS = {
    "days_past_due": "number", "overdue_amount": "number", "on_time_rate": "number", "paid_ratio": "number",
    "partial_payments": "number", "longest_streak": "number", "current_streak": "number",
    "broken_promises": "number", "broken_plans": "number", "broken_commitments": "number",
    "contact_attempts": "number", "answered_contacts": "number",
    "replied": "bool", "contact_success": "bool", "hardship": "bool", "bucket": "bucket",
    "late_last_3": "number", "utilisation": "number", "default_probability": "number",
}
WEIGHTS = ("days_past_due", "overdue_amount", "missed_payments", "unpaid_share", "current_streak",
           "broken_commitments", "no_contact")
CAPS = ("days_cap", "amount_cap", "streak_cap")
LIST_COLUMNS = (
    "account_id", "region", "language", "product", "currency", "bucket", "days_past_due", "overdue_amount",
    "on_time_rate", "paid_ratio", "longest_streak", "current_streak", "broken_promises", "broken_plans",
    "contact_attempts", "replied", "agent_outcome", "visit_outcome", "late_last_3", "utilisation",
    "default_probability", "priority", "strategy", "reasons", "reasons_zh",
)
# accounts.csv may have it; for revolving products it gives the utilisation feature.
SCREENING_ACCOUNT_COLUMNS = ("credit_limit",)
# A contribution to the log-odds below this is not named as a reason.
MIN_CONTRIBUTION = 0.05
TOP_REASONS = 3
FACT_COLUMNS = {
    "broken_promises": pl.Int64, "broken_plans": pl.Int64, "contact_attempts": pl.Int64,
    "answered_contacts": pl.Int64, "replied": pl.Boolean, "hardship": pl.Boolean, "broken_promise_on": pl.Date,
    "agent_outcome": pl.String, "visit_outcome": pl.String,
}
MAX_LISTED_ERRORS = 100
PHONE_REPEATED = "already used on an earlier line"
# Above this many bytes of input, a progress bar is worth showing.
LARGE_INPUT_BYTES = 50_000_000
TOP_ACCOUNTS_IN_REPORT = 20
TOP_COLUMNS = ("account_id", "region", "bucket", "days_past_due", "priority", "strategy", "reasons", "reasons_zh")

_UNITS = 10_000
# bot.domain.ledger's shapes, anchored: polars' str.contains searches, where re.fullmatch matches the whole value.
_ACCOUNT_ID = f"^(?:{ACCOUNT_ID_PATTERN})$"
_E164 = f"^(?:{E164_PATTERN})$"
_ID_LAST4 = f"^(?:{ID_LAST4_PATTERN})$"
_ISO_DATE = f"^(?:{ISO_DATE_PATTERN})$"
_AMOUNT = f"^(?:{AMOUNT_PATTERN})$"
_SIGNED_AMOUNT = f"^(?:{SIGNED_AMOUNT_PATTERN})$"


# --- the rules file -----------------------------------------------------------------------------


class StrategyError(ValueError):
    """policy/strategies.yml is invalid; the message names the rule and the field."""


@dataclass(frozen=True)
class Condition:
    """One test of a rule: a range (``low``..``high``, inclusive) or a value to equal."""

    metric: str
    low: float | None = None
    high: float | None = None
    equals: bool | str | None = None

    def expr(self) -> pl.Expr:
        column = pl.col(self.metric)
        if self.equals is not None:
            return column == self.equals
        test = pl.lit(True)
        if self.low is not None:
            test &= column >= self.low
        if self.high is not None:
            test &= column <= self.high
        return test


@dataclass(frozen=True)
class Rule:
    """A strategy and the conditions (all must hold) under which it applies."""

    strategy: str
    why: str
    conditions: tuple[Condition, ...] = ()

    def expr(self) -> pl.Expr:
        test = pl.lit(True)
        for condition in self.conditions:
            test &= condition.expr()
        return test.fill_null(False)


@dataclass(frozen=True)
class Priority:
    """Weights of the signals the priority score averages, and where each signal saturates."""

    weights: dict[str, float]
    days_cap: float = 180
    amount_cap: float = 100_000
    streak_cap: float = 6


@dataclass(frozen=True)
class Strategies:
    """The ordered rules (first match wins), the default and the priority weights."""

    rules: tuple[Rule, ...]
    default: Rule
    priority: Priority


def load_strategies(path: Path = STRATEGIES_FILE) -> Strategies:
    """Read and check the rules file.

    Raises:
        StrategyError: naming the file, the rule index and the field at fault.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StrategyError(f"{path}: cannot be read as YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise StrategyError(f"{path}: must be a mapping with rules, default and priority")
    rules = raw.get("rules")
    if not isinstance(rules, list):
        raise StrategyError(f"{path}: rules: must be a list of rules")
    if "default" not in raw:
        raise StrategyError(f"{path}: default: missing; add `default: {{strategy: gentle_sms, why: ...}}`")
    return Strategies(
        rules=tuple(_rule(path, f"rules[{i}]", rule) for i, rule in enumerate(rules)),
        default=_rule(path, "default", raw["default"], conditions_allowed=False),
        priority=_priority(path, raw.get("priority")),
    )


def _rule(path: Path, where: str, raw: Any, conditions_allowed: bool = True) -> Rule:
    if not isinstance(raw, dict):
        raise StrategyError(f"{path}: {where}: must be a mapping with strategy, when and why")
    allowed = {"strategy", "when", "why"} if conditions_allowed else {"strategy", "why"}
    if unknown := sorted(set(raw) - allowed):
        raise StrategyError(f"{path}: {where}.{unknown[0]}: unknown field; use {', '.join(sorted(allowed))}")
    if raw.get("strategy") not in STRATEGIES:
        raise StrategyError(f"{path}: {where}.strategy: {raw.get('strategy')!r} is not one of {', '.join(STRATEGIES)}")
    if not isinstance(raw.get("why"), str) or not raw["why"].strip():
        raise StrategyError(f"{path}: {where}.why: must be a sentence saying why the strategy fits")
    if not conditions_allowed:
        return Rule(raw["strategy"], raw["why"].strip())
    when = raw.get("when")
    if not isinstance(when, dict) or not when:
        raise StrategyError(f"{path}: {where}.when: must map at least one metric to a range or a value")
    conditions = tuple(_condition(path, f"{where}.when.{metric}", metric, value) for metric, value in when.items())
    return Rule(raw["strategy"], raw["why"].strip(), conditions)


def _condition(path: Path, where: str, metric: Any, value: Any) -> Condition:
    kind = METRICS.get(metric)
    if kind is None:
        raise StrategyError(f"{path}: {where}: unknown metric; use one of {', '.join(METRICS)}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise StrategyError(f"{path}: {where}: must be true or false")
        return Condition(metric, equals=value)
    if kind == "bucket":
        if value not in BUCKETS:
            raise StrategyError(f"{path}: {where}: must be one of {', '.join(BUCKETS)}")
        return Condition(metric, equals=value)
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise StrategyError(f"{path}: {where}: must be a range such as {{min: 1, max: 30}}")
    low, high = (_number(path, f"{where}.{end}", value[end]) if end in value else None for end in ("min", "max"))
    if low is not None and high is not None and low > high:
        raise StrategyError(f"{path}: {where}: min {low:g} is above max {high:g}")
    return Condition(metric, low=low, high=high)


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrategyError(f"{path}: {where}: must be a number, not {value!r}")
    return float(value)


def _priority(path: Path, raw: Any) -> Priority:
    if not isinstance(raw, dict) or not isinstance(raw.get("weights"), dict):
        raise StrategyError(f"{path}: priority.weights: missing; give a weight to each of {', '.join(WEIGHTS)}")
    weights = raw["weights"]
    if unknown := sorted(set(weights) - set(WEIGHTS)):
        raise StrategyError(f"{path}: priority.weights.{unknown[0]}: unknown signal; use {', '.join(WEIGHTS)}")
    checked = {name: _number(path, f"priority.weights.{name}", value) for name, value in weights.items()}
    if any(v < 0 for v in checked.values()) or sum(checked.values()) <= 0:
        raise StrategyError(f"{path}: priority.weights: must be zero or more, and not all zero")
    if unknown := sorted(set(raw) - {"weights", *CAPS}):
        raise StrategyError(f"{path}: priority.{unknown[0]}: unknown field; use weights, {', '.join(CAPS)}")
    caps = {name: _number(path, f"priority.{name}", raw[name]) for name in CAPS if name in raw}
    if any(v <= 0 for v in caps.values()):
        raise StrategyError(f"{path}: priority: {', '.join(CAPS)} must be above zero")
    return Priority(weights=checked, **caps)


# --- reading and checking the ledger files -------------------------------------------------------


class ScreeningInputError(ValueError):
    """An input file is malformed; ``errors`` lists the first bad rows, ``total`` counts them all."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        more = f" (the first {len(errors)} are listed)" if total > len(errors) else ""
        super().__init__(f"{total} problem(s) in the input{more}; nothing was written")
        self.errors = errors
        self.total = total


@dataclass(frozen=True)
class _Check:
    column: str
    ok: pl.Expr
    reason: str


def read_ledger(accounts_csv: Path, installments_csv: Path, today: date | None = None
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read both files as text, check every row, and return them typed.

    The accounts frame keeps only what screening needs (no name, phone, ID digits, birth date or
    address). Amounts come back in integer ten-thousandths, dates as dates.

    Raises:
        ScreeningInputError: every bad row as ``file:line: column: reason`` (header is line 1).
    """
    today = today or date.today()
    accounts = _read_text(accounts_csv, ACCOUNT_COLUMNS, SCREENING_ACCOUNT_COLUMNS)
    installments = _read_text(installments_csv, INSTALLMENT_COLUMNS, OPTIONAL_INSTALLMENT_COLUMNS)
    errors = check_ledger(accounts, installments, (accounts_csv.name, installments_csv.name), today)
    if errors.height:
        raise_errors(errors)
    return typed_ledger(accounts, installments)


def check_ledger(accounts: pl.DataFrame, installments: pl.DataFrame, names: tuple[str, str], today: date,
                 phones_unique: bool = True) -> pl.DataFrame:
    """Every failed check of both text frames, one row each (file, line, column, reason).

    Args:
        names: the two files' names, for the errors.
        phones_unique: also check that no phone repeats (a partition leaves that to bot.screening.partitions,
            which checks the whole file).
    """
    installments = _with_account(installments, accounts)
    installments = installments.with_columns(_units(c).alias(_parsed(c)) for c in AMOUNT_COLUMNS)  # once, not per check
    return pl.concat([
        _failures(accounts, names[0], _account_checks(accounts, today, phones_unique)),
        _failures(installments, names[1], _installment_checks(installments, today)),
    ])


def typed_ledger(accounts: pl.DataFrame, installments: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Checked text frames as screening reads them (amounts in ten-thousandths, dates as dates)."""
    return _typed_accounts(accounts), _typed_installments(_with_account(installments, accounts))


AMOUNT_COLUMNS = ("amount_due", "amount_paid", "minimum_due")


def _parsed(column: str) -> str:
    """The name of the column holding ``column`` parsed by ``_units``, while the checks run."""
    return f"_{column}_units"


def _with_account(installments: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """Each instalment with its account's currency and product (null for an unknown account)."""
    known = accounts.select("account_id", "currency", "product").unique("account_id", keep="first")
    return installments.join(known, on="account_id", how="left")


def _read_text(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()) -> pl.DataFrame:
    """Every column as stripped text, with each row's line number; blank lines dropped.

    An ``optional`` column the file lacks reads as empty text.
    """
    text = scan_text(path, columns, optional)
    try:
        return text.collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise_unreadable(path, exc)


def scan_text(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = (),
              source: Path | bytes | None = None, first_line: int = 2) -> pl.LazyFrame:
    """``_read_text`` as a lazy frame.

    Args:
        source: the CSV text to read instead of ``path`` (bot.screening.partitions reads a big file in
            pieces, each with the header); ``path`` still names the file in errors.
        first_line: the line number of the first row of ``source``.

    The header is read at once: a file that cannot be read or lacks a column raises here.
    """
    try:
        source = with_newlines(path) if source is None else source
        options: dict[str, Any] = {"infer_schema": False, "missing_utf8_is_empty_string": True, "encoding": "utf8"}
        frame = pl.scan_csv(source, **options) if isinstance(source, Path) else pl.read_csv(source, **options).lazy()
        names = frame.collect_schema().names()
        frame = frame.rename({c: c.strip() for c in names})  # two names equal once stripped: an error
        names = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise_unreadable(path, exc)
    if missing := [c for c in columns if c not in names]:
        _raise_one(path.name, 1, ",".join(missing), f"header lacks column(s); expected {','.join(columns)}")
    frame = frame.with_columns(pl.lit("").alias(c) for c in optional if c not in names)
    columns = (*columns, *optional)
    frame = frame.select(pl.col(c).str.strip_chars() for c in columns)
    frame = frame.with_row_index("line", offset=first_line).with_columns(pl.col("line").cast(pl.Int64))
    blank = pl.all_horizontal(pl.col(c) == "" for c in columns)
    return frame.filter(~blank)


def raise_unreadable(path: Path, exc: Exception) -> NoReturn:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    _raise_one(path.name, 1, "-", f"cannot be read as a UTF-8 CSV file ({first})")


def with_newlines(path: Path) -> Path | bytes:
    """A file with lone CR line endings (Excel's "CSV (Macintosh)") as LF lines; polars reads lone CRs as
    part of one long header line, where Python's csv module (bot.domain.ledger) sees the rows."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if b"\n" in head or b"\r" not in head:
        return path
    return path.read_bytes().replace(b"\r", b"\n")


FORMULA_START = "=+-@\t\r"


def cell_text(cell: str) -> str:
    """A collection-list cell as the ledger had it: the apostrophe ``spreadsheet_safe`` added is removed."""
    cell = cell.strip()
    return cell[1:] if cell[:1] == "'" and cell[1:2] and cell[1] in FORMULA_START else cell


def spreadsheet_safe(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Text that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe.

    The ledger's free text (a region, say) reaches the collection list supervisors open in Excel; so do
    account ids, and one like "-1-1" would be shown as -2.
    """
    risky = f"^[{re.escape(FORMULA_START)}]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, kind in frame.collect_schema().items() if kind == pl.String)


def _raise_one(file: str, line: int, column: str, reason: str) -> NoReturn:
    raise ScreeningInputError([RowError(file, line, column, reason)], 1)


def _valid_date(column: str) -> pl.Expr:
    return pl.col(column).str.to_date("%Y-%m-%d", strict=False).is_not_null() & pl.col(column).str.contains(_ISO_DATE)


def _as_date(column: str) -> pl.Expr:
    return pl.col(column).str.to_date("%Y-%m-%d", strict=False)


def _valid_values(frame: pl.DataFrame, column: str, test: Callable[[str], bool]) -> list[str]:
    """The distinct values of ``column`` that pass ``test``; distinct zones or currencies are few."""
    return [v for v in frame.get_column(column).unique().to_list() if v and test(v)]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _too_long(columns: Iterable[str]) -> list[_Check]:
    return [_Check(c, pl.col(c).str.len_chars() <= MAX_FIELD_LENGTH, f"longer than {MAX_FIELD_LENGTH} characters")
            for c in columns]


def _account_checks(accounts: pl.DataFrame, today: date, phones_unique: bool = True) -> list[_Check]:
    zones = _valid_values(accounts, "timezone", _is_zone)
    currencies = _valid_values(accounts, "currency", is_currency)
    birth = _as_date("birth_date")
    return [
        _Check("account_id", pl.col("account_id").str.contains(_ACCOUNT_ID), REASONS["account_id"]),
        _Check("account_id", pl.col("account_id").is_first_distinct(), "appears twice in this file"),
        _Check("name", pl.col("name") != "", REASONS["name"]),
        _Check("phone", pl.col("phone").str.contains(_E164), REASONS["phone"]),
        *([_Check("phone", pl.col("phone").is_first_distinct(), PHONE_REPEATED)] if phones_unique else []),
        _Check("language", pl.col("language").is_in(LANGUAGES), REASONS["language"]),
        _Check("timezone", pl.col("timezone").is_in(zones), REASONS["timezone"]),
        _Check("product", pl.col("product").is_in(PRODUCTS), REASONS["product"]),
        _Check("currency", pl.col("currency").is_in(currencies), REASONS["currency"]),
        _Check("id_last4", pl.col("id_last4").str.to_uppercase().str.contains(_ID_LAST4), REASONS["id_last4"]),
        _Check("birth_date", _valid_date("birth_date"), "must be a real calendar date written YYYY-MM-DD"),
        _Check("birth_date", ((birth >= date(1900, 1, 1)) & (birth < today)).fill_null(True),
               REASONS["birth_date"]),
        _Check("credit_limit", (pl.col("credit_limit") == "") | (_units("credit_limit") > 0).fill_null(False),
               "must be empty or a decimal number above zero such as 50000.00"),
        *_too_long((*ACCOUNT_COLUMNS, *SCREENING_ACCOUNT_COLUMNS)),
    ]


def _installment_checks(installments: pl.DataFrame, today: date) -> list[_Check]:
    known = pl.col("currency").is_not_null()
    precision = pl.col("currency").replace_strict(
        {c: get_currency_precision(c) for c in _valid_values(installments, "currency", is_currency)},
        default=4, return_dtype=pl.Int64)
    due, paid, minimum = (pl.col(_parsed(c)) for c in AMOUNT_COLUMNS)
    revolving = pl.col("product").is_in(REVOLVING_PRODUCTS)
    checks = [
        _Check("account_id", known, "is not in accounts.csv"),
        _Check("installment_no", pl.col("installment_no").str.contains(r"^0*[1-9]\d{0,8}$"),
               "must be a whole number from 1"),
        _Check("installment_no", pl.struct("account_id", "installment_no").is_first_distinct(),
               "appears twice for this account"),
        _Check("due_date", _valid_date("due_date"), "must be a real calendar date written YYYY-MM-DD"),
        _Check("paid_date", (pl.col("paid_date") == "") | _valid_date("paid_date"),
               "must be empty or a real calendar date written YYYY-MM-DD"),
        _Check("paid_date", (_as_date("paid_date") <= today).fill_null(True), "is in the future"),
        _Check("paid_date", (pl.col("paid_date") != "") | (paid <= 0).fill_null(True),
               "is empty but amount_paid is above zero"),
    ]
    for column in AMOUNT_COLUMNS:
        decimals = (pl.col(column).str.len_bytes() - pl.col(column).str.find(".", literal=True) - 1).fill_null(0)
        shape = _SIGNED_AMOUNT if column == "amount_due" else _AMOUNT
        ok = pl.col(column).str.contains(shape)
        checks += [
            _Check(column, ok | (pl.col(column) == "") if column == "minimum_due" else ok, REASONS["amount"]),
            _Check(column, (decimals <= precision) | ~known, "has more decimals than the account's currency allows"),
        ]
    checks += [
        _Check("amount_due", (due >= 0).fill_null(True) | revolving | ~known, REASONS["credit_balance"]),
        _Check("minimum_due", (pl.col("minimum_due") == "") | revolving | ~known, REASONS["minimum_not_revolving"]),
        _Check("minimum_due", ((due >= 0) | (minimum == 0)).fill_null(True), REASONS["credit_minimum"]),
        _Check("minimum_due", ((due < 0) | (minimum <= due)).fill_null(True), REASONS["minimum_above_due"]),
    ]
    return checks + _too_long((*INSTALLMENT_COLUMNS, *OPTIONAL_INSTALLMENT_COLUMNS))


def _failures(frame: pl.DataFrame, file: str, checks: list[_Check]) -> pl.DataFrame:
    """One row (file, line, column, reason) per failed check, all checks evaluated in one pass."""
    flags = frame.select("line", *(c.ok.fill_null(False).alias(f"ok{i}") for i, c in enumerate(checks)))
    failed = [
        flags.filter(~pl.col(f"ok{i}")).select(
            pl.lit(file).alias("file"), "line", pl.lit(c.column).alias("column"), pl.lit(c.reason).alias("reason"))
        for i, c in enumerate(checks)
    ]
    return pl.concat(failed)


def raise_errors(errors: pl.DataFrame) -> NoReturn:
    listed = errors.sort("file", "line").head(MAX_LISTED_ERRORS)
    rows = [RowError(f, line, c, r) for f, line, c, r in listed.iter_rows()]
    raise ScreeningInputError(rows, errors.height)


def _units(column: str) -> pl.Expr:
    """A decimal string (a minus sign allowed) as integer ten-thousandths; null when it is not a valid amount.

    Exact: 12 digits and 4 decimals fit a 38-digit decimal, and so does their product with 10,000.
    """
    valid = pl.col(column).str.contains(_SIGNED_AMOUNT)
    return pl.when(valid).then((pl.col(column).cast(pl.Decimal(38, 4), strict=False) * _UNITS).cast(pl.Int64))


def _typed_accounts(accounts: pl.DataFrame) -> pl.DataFrame:
    return accounts.select("account_id", "region", "language", "timezone", "product", "currency",
                           _units("credit_limit").alias("credit_limit"))


def _typed_installments(installments: pl.DataFrame) -> pl.DataFrame:
    return installments.select(
        "account_id",
        pl.col("installment_no").cast(pl.Int64),
        _as_date("due_date").alias("due_date"),
        _units("amount_due").alias("amount_due"),
        _units("amount_paid").alias("amount_paid"),
        _as_date("paid_date").alias("paid_date"),
        _units("minimum_due").alias("minimum_due"),
    )


def _required() -> pl.Expr:
    """What an instalment required by its due date: the minimum payment when there is one, never below 0
    (bot.domain.ledger.Installment.required)."""
    return pl.coalesce("minimum_due", "amount_due").clip(lower_bound=0)


# --- screening ---------------------------------------------------------------------------------


def bucket_expr(days: pl.Expr) -> pl.Expr:
    """The days-past-due bucket, as bot.domain.plans.bucket gives it for one number."""
    return (pl.when(days <= 0).then(pl.lit("current"))
            .when(days <= 30).then(pl.lit("1-30"))
            .when(days <= 60).then(pl.lit("31-60"))
            .when(days <= 90).then(pl.lit("61-90"))
            .otherwise(pl.lit("90+")))


def screen(accounts: pl.DataFrame, installments: pl.DataFrame, as_of: date | None = None,
           facts: pl.DataFrame | None = None, strategies: Strategies | None = None,
           now: datetime | None = None, model: PriorityModel | None = None) -> pl.DataFrame:
    """Metrics, bucket, priority, reasons and strategy per account, highest priority first.

    With a ``model``, the priority is its probability of going bad (0-100) and the reasons are the features
    that raised it most; without, the priority is the rules' weighted score.

    Args:
        accounts: as read_ledger returns them (account_id, region, language, timezone, product, currency).
        installments: as read_ledger returns them (amounts in ten-thousandths).
        as_of: the screening day; None for today in each borrower's time zone (at ``now``).
        facts: per account_id, any of FACT_COLUMNS (from load_facts); missing ones count as none.
        strategies: the rules; None for policy/strategies.yml.
    """
    strategies = strategies or load_strategies()
    result = metrics(accounts, installments, as_of, facts, now)
    if model is None:
        result = result.with_columns(
            _priority_expr(strategies.priority).alias("priority"),
            pl.lit(None, dtype=pl.Float64).alias("default_probability"),
            *(reasons.rule_reasons(lang).alias(_reasons_column(lang)) for lang in reasons.LANGUAGES),
        )
    else:
        result = _learned(result, model)
    result = result.with_columns(
        _choose(strategies, "strategy").alias("strategy"),
        _choose(strategies, "why").alias("why"),
    )
    return result.sort(["priority", "account_id"], descending=[True, False])


def metrics(accounts: pl.DataFrame, installments: pl.DataFrame, as_of: date | None = None,
            facts: pl.DataFrame | None = None, now: datetime | None = None) -> pl.DataFrame:
    """Every metric and model feature per account, before any priority (arguments as ``screen``'s).

    Payments recorded after the screening day are not seen, so a past ``as_of`` screens as that day did.
    """
    days = _with_as_of(accounts, as_of, now or datetime.now(timezone.utc))
    lines = installments.join(days.select("account_id", "as_of"), on="account_id", how="inner")
    lines = lines.with_columns(
        pl.when(pl.col("paid_date") > pl.col("as_of")).then(0).otherwise(pl.col("amount_paid")).alias("amount_paid"),
        pl.when(pl.col("paid_date") > pl.col("as_of")).then(None).otherwise(pl.col("paid_date")).alias("paid_date"),
    )
    result = (days.join(_payment_metrics(lines), on="account_id", how="left")
              .join(_streaks(lines), on="account_id", how="left")
              .join(_recent(lines), on="account_id", how="left")
              .join(_facts(facts), on="account_id", how="left"))
    result = result.with_columns(
        pl.col("installments_due", "overdue_units", "partial_payments", "longest_streak", "current_streak",
               "late_last_3", "recent_due", "billed_last_3",
               *(c for c, t in FACT_COLUMNS.items() if t == pl.Int64)).fill_null(0),
        pl.col("replied", "hardship").fill_null(False),
    )
    result = result.with_columns(_derived(result))
    return result.with_columns(bucket_expr(pl.col("days_past_due")).alias("bucket"))


def rule_priority(result: pl.DataFrame, strategies: Strategies | None = None) -> pl.Series:
    """The rules' priority (0-100) of each account of a ``metrics`` frame."""
    weights = (strategies or load_strategies()).priority
    return result.select(_priority_expr(weights).alias("priority")).get_column("priority")


def _reasons_column(language: str) -> str:
    return "reasons" if language == "en" else f"reasons_{language}"


def _learned(result: pl.DataFrame, model: PriorityModel) -> pl.DataFrame:
    """Priority from the model's probability; reasons from the features that raised it most."""
    x = matrix(result)
    probability = model.probability(x)
    contributions = model.contributions(x)
    # Twice as many candidates as reasons: a feature may have no words for an account (no credit limit,
    # nothing due yet), and two may share them; the first TOP_REASONS with words are said.
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :2 * TOP_REASONS]
    raised = np.take_along_axis(contributions, order, axis=1) >= MIN_CONTRIBUTION
    top = np.where(raised, order, -1)
    result = result.with_columns(pl.Series("default_probability", probability).round(4))
    return result.with_columns(
        (pl.col("default_probability") * 100).round(1).alias("priority"),
        *(reasons.learned_reasons(result, top, FEATURE_NAMES, lang, TOP_REASONS).alias(_reasons_column(lang))
          for lang in reasons.LANGUAGES),
    )


def _with_as_of(accounts: pl.DataFrame, as_of: date | None, now: datetime) -> pl.DataFrame:
    """Each account with its screening day: ``as_of``, or today in its time zone (one lookup per zone)."""
    if as_of is not None:
        return accounts.with_columns(pl.lit(as_of).alias("as_of"))
    zones = accounts.get_column("timezone").unique().to_list()
    today = pl.DataFrame({"timezone": zones, "as_of": [now.astimezone(ZoneInfo(z)).date() for z in zones]},
                         schema={"timezone": pl.String, "as_of": pl.Date})
    return accounts.join(today, on="timezone", how="left")


def _due() -> pl.Expr:
    return pl.col("due_date") < pl.col("as_of")


def _late() -> pl.Expr:
    """Not paid in full by its due date."""
    on_time = (pl.col("amount_paid") >= _required()) & (
        (pl.col("paid_date") <= pl.col("due_date")).fill_null(_required() == 0))
    return ~on_time


def _payment_metrics(lines: pl.DataFrame) -> pl.DataFrame:
    outstanding = (_required() - pl.col("amount_paid")).clip(lower_bound=0)
    partial = (pl.col("amount_paid") > 0) & (pl.col("amount_paid") < _required())
    due = lines.filter(_due())
    return due.group_by("account_id").agg(
        pl.len().alias("installments_due"),
        outstanding.sum().alias("overdue_units"),
        pl.col("due_date").filter(outstanding > 0).min().alias("oldest_unpaid"),
        (~_late()).sum().alias("on_time"),
        pl.col("amount_paid").sum().alias("paid_units"),
        _required().sum().alias("due_units"),
        partial.sum().alias("partial_payments"),
    )


def _streaks(lines: pl.DataFrame) -> pl.DataFrame:
    """Longest and current runs of late instalments, in instalment order.

    Consecutive rows with the same account and lateness share a run id; a run's length is its row count.
    """
    due = lines.filter(_due()).select("account_id", "installment_no", _late().alias("late"))
    due = due.sort("account_id", "installment_no")
    starts = (pl.col("late") != pl.col("late").shift(1)) | (pl.col("account_id") != pl.col("account_id").shift(1))
    due = due.with_columns(starts.fill_null(True).cum_sum().alias("run"))
    runs = due.group_by("account_id", "run").agg(pl.col("late").first(), pl.len().alias("length"))
    last = pl.col("run") == pl.col("run").max()
    return runs.group_by("account_id").agg(
        pl.col("length").filter(pl.col("late")).max().fill_null(0).alias("longest_streak"),
        pl.col("length").filter(last & pl.col("late")).sum().alias("current_streak"),
    )


def _recent(lines: pl.DataFrame) -> pl.DataFrame:
    """The last three instalments due, the last one's payment, the statement balances and their trend."""
    due = lines.filter(_due()).with_columns(_late().alias("late"), _required().alias("required"))
    due = due.sort("account_id", "installment_no", descending=[False, True])
    due = due.with_columns(pl.int_range(pl.len()).over("account_id").alias("back"))  # 0: the last one due
    billed = pl.col("amount_due") > 0
    paid_share = (pl.col("amount_paid") / pl.col("amount_due")).clip(upper_bound=1.0)
    last = pl.col("back") == 0
    return due.group_by("account_id").agg(
        (pl.col("late") & (pl.col("back") < 3)).sum().alias("late_last_3"),
        (pl.col("back") < 3).sum().alias("recent_due"),
        pl.col("late").sum().alias("late_instalments"),
        (pl.col("amount_paid") < pl.col("required")).sum().alias("unpaid_instalments"),
        pl.col("back").filter(pl.col("late")).min().alias("since_late"),
        (pl.col("amount_paid") >= pl.col("amount_due")).filter(billed & (pl.col("back") < 3)).sum()
        .alias("paid_in_full_last_3"),
        (billed & (pl.col("back") < 3)).sum().alias("billed_last_3"),
        paid_share.filter(billed).mean().alias("full_pay_ratio"),
        pl.when(pl.col("required") > 0).then((pl.col("amount_paid") / pl.col("required")).clip(upper_bound=1.0))
        .otherwise(1.0).filter(last).first().alias("last_paid_ratio"),
        pl.col("amount_due").filter(last).first().alias("latest_balance"),
        pl.col("amount_paid").filter(last).first().alias("last_payment"),
        paid_share.filter(last & billed).first().alias("last_full_pay"),
        pl.col("amount_due").filter(pl.col("back") == 3).first().alias("earlier_balance"),
        pl.col("due_date").filter(pl.col("back") == 3).first().alias("earlier_due"),
    )


def _facts(facts: pl.DataFrame | None) -> pl.DataFrame:
    """The facts frame with every FACT_COLUMNS column, missing ones null (filled by the caller)."""
    facts = facts if facts is not None else pl.DataFrame({"account_id": []}, schema={"account_id": pl.String})
    return facts.select(
        "account_id",
        *(pl.col(c).cast(t) if c in facts.columns else pl.lit(None, dtype=t).alias(c) for c, t in FACT_COLUMNS.items()),
    )


def _derived(result: pl.DataFrame) -> list[pl.Expr]:
    nothing_due = pl.col("installments_due") == 0
    return [
        (pl.col("as_of") - pl.col("oldest_unpaid")).dt.total_days().fill_null(0).alias("days_past_due"),
        (pl.col("overdue_units") / _UNITS).alias("overdue_amount"),
        pl.when(nothing_due).then(1.0).otherwise(pl.col("on_time") / pl.col("installments_due")).alias("on_time_rate"),
        # Capped at 1: paying ahead (or a card's whole balance against its minimum) is not "3696% paid".
        pl.when(pl.col("due_units").fill_null(0) == 0).then(1.0)
        .otherwise((pl.col("paid_units") / pl.col("due_units")).clip(upper_bound=1.0)).alias("paid_ratio"),
        (pl.col("broken_promises") + pl.col("broken_plans")).alias("broken_commitments"),
        ((pl.col("answered_contacts") > 0) | pl.col("replied")).alias("contact_success"),
        pl.when((pl.col("credit_limit") > 0) & pl.col("product").is_in(REVOLVING_PRODUCTS))
        .then(pl.col("latest_balance").clip(lower_bound=0) / pl.col("credit_limit"))
        .alias("utilisation"),
        # The balance's change over the last three statements, against the earlier one (none from a credit).
        pl.when(pl.col("earlier_balance") > 0).then(
            ((pl.col("latest_balance") - pl.col("earlier_balance")) / pl.col("earlier_balance")).clip(-1.0, 10.0))
        .alias("balance_trend"),
        pl.when(pl.col("earlier_balance") > 0).then(pl.col("earlier_due")).alias("trend_since"),
    ]


def _priority_expr(priority: Priority) -> pl.Expr:
    """The weighted mean of the signals, each scaled to 0..1, as a score from 0 to 100."""
    signals = {
        "days_past_due": pl.col("days_past_due") / priority.days_cap,
        "overdue_amount": pl.col("overdue_amount").log1p() / pl.lit(priority.amount_cap).log1p(),
        "missed_payments": 1 - pl.col("on_time_rate"),
        "unpaid_share": 1 - pl.col("paid_ratio"),
        "current_streak": pl.col("current_streak") / priority.streak_cap,
        "broken_commitments": pl.col("broken_commitments") / 2,
        "no_contact": ((pl.col("contact_attempts") > 0) & ~pl.col("contact_success")).cast(pl.Float64),
    }
    total = sum(priority.weights.values())
    score = pl.sum_horizontal(
        signals[name].clip(0, 1) * weight for name, weight in priority.weights.items() if weight
    )
    return (score * 100 / total).round(1)


def _choose(strategies: Strategies, field_name: str) -> pl.Expr:
    """The first matching rule's strategy (or why); the default's when none matches."""
    default = pl.lit(getattr(strategies.default, field_name))
    if not strategies.rules:
        return default
    first, *rest = strategies.rules
    chain: Any = pl.when(first.expr()).then(pl.lit(getattr(first, field_name)))  # Then, then ChainedThen
    for rule in rest:
        chain = chain.when(rule.expr()).then(pl.lit(getattr(rule, field_name)))
    return chain.otherwise(default)  # type: ignore[no-any-return]


# --- facts from Redis ----------------------------------------------------------------------------


async def load_facts(services: Any, account_ids: list[str], as_of: date | None = None,
                     batch_size: int = 500) -> pl.DataFrame:
    """Promises, arrangements, contacts, replies, hardships, agents' and visits' outcomes per account, from Redis.

    Reads in pipelined batches; an account's ledger record is opened only when it has a promise or an
    arrangement to judge (kept or broken is read from what was paid since, by bot.domain.arrangements). Only the
    newest agent outcome and the newest field visit outcome count.

    Args:
        services: a bot.services.Services.
        as_of: the day promises are judged on; None for today in each borrower's time zone.
    """
    rows: list[dict[str, Any]] = []
    for start in range(0, len(account_ids), batch_size):
        rows += await _facts_batch(services, account_ids[start:start + batch_size], as_of)
    return pl.DataFrame(rows, schema={"account_id": pl.String, **FACT_COLUMNS})


_READS_PER_ACCOUNT = 7  # the commands _facts_batch pipelines for each account


async def _facts_batch(services: Any, ids: list[str], as_of: date | None) -> list[dict[str, Any]]:
    oldest_visit = services.field_visits.oldest_kept()
    async with services.redis.pipeline(transaction=False) as pipe:
        for account_id in ids:
            pipe.get(keys.promise(account_id))
            pipe.get(keys.arrangement(account_id))
            pipe.hvals(keys.contact_attempts(account_id))
            pipe.exists(keys.last_reply(account_id))
            pipe.exists(keys.hardship_reason(account_id))
            pipe.lindex(keys.agent_outcomes(account_id), 0)
            pipe.zrevrangebyscore(keys.field_visit_outcomes(account_id), "+inf", oldest_visit, start=0, num=1)
        replies = await pipe.execute()
    per_account = [replies[i:i + _READS_PER_ACCOUNT] for i in range(0, len(replies), _READS_PER_ACCOUNT)]
    judged = [i for i, (promise, plan, *_) in zip(ids, per_account, strict=True) if promise or plan]
    ledger = await services.ledger.get_many(judged)
    return [_fact_row(services.vault, account_id, reply, ledger.get(account_id), as_of)
            for account_id, reply in zip(ids, per_account, strict=True)]


def _fact_row(vault: Any, account_id: str, reply: list[Any], account: Any, as_of: date | None) -> dict[str, Any]:
    from bot.domain.arrangements import promise_status, status

    promise_sealed, plan_sealed, attempts, replied, hardship, outcome_sealed, visits = reply
    row: dict[str, Any] = {"account_id": account_id, "broken_promises": 0, "broken_plans": 0,
                           "replied": bool(replied), "hardship": bool(hardship), "broken_promise_on": None,
                           "agent_outcome": _agent_outcome(vault, outcome_sealed),
                           "visit_outcome": _visit_outcome(vault, visits[0] if visits else None)}
    records = [json.loads(a) for a in attempts]
    row["contact_attempts"] = len(records)
    row["answered_contacts"] = sum(1 for r in records if r.get("answered"))
    if account is None:
        return row
    today = as_of or datetime.now(ZoneInfo(account.timezone)).date()
    if promise_sealed:
        promise = vault.open(promise_sealed)
        if promise_status(promise, account, today) == "broken":
            row["broken_promises"], row["broken_promise_on"] = 1, date.fromisoformat(promise["date"])
    if plan_sealed and status(vault.open(plan_sealed), account, today) == "broken":
        row["broken_plans"] = 1
    return row


def _agent_outcome(vault: Any, sealed: bytes | None) -> str | None:
    """The outcome code of a sealed record (never its note); None when there is none.

    A code that is not one of AGENT_OUTCOMES (bot.domain.handoffs.OUTCOMES) reads as "other", so that nothing
    but those codes can reach the collection list.
    """
    if not sealed:
        return None
    outcome = vault.open(sealed).get("outcome")
    return outcome if outcome in AGENT_OUTCOMES else "other"


def _visit_outcome(vault: Any, sealed: bytes | None) -> str | None:
    """The outcome code of a sealed field visit outcome (bot.field.visits); None when there is none.

    A code that is not one of VISIT_OUTCOMES (bot.field.visits.OUTCOMES) reads as "other", as for agents'
    outcomes: the account was visited, but nothing but those codes can reach the collection list, and
    "other" gives no reason in words.
    """
    if not sealed:
        return None
    code = vault.open(sealed).get("code")
    return code if code in VISIT_OUTCOMES else "other"


# --- outputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """Where a screening run wrote its files."""

    folder: Path
    collection_list: Path
    summary: Path
    report: Path
    charts: tuple[Path, ...] = field(default_factory=tuple)


def latest_run(root: Path, exclude: Path | None = None) -> Path | None:
    """The newest earlier run folder under ``root`` (by its summary.json's time), or None."""
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / "summary.json").is_file() and p != exclude]
    return max(runs, key=_summary_time) if runs else None


def _summary_time(run_dir: Path) -> float:
    return (run_dir / "summary.json").stat().st_mtime


def write_outputs(result: pl.DataFrame | pl.LazyFrame, out_dir: Path, previous: Path | None = None,
                  generated_at: datetime | None = None, card: dict[str, Any] | None = None,
                  top: pl.DataFrame | None = None, write_list: Callable[[Path], None] | None = None) -> Outputs:
    """Write collection_list.csv, summary.json, report.html and its two charts into ``out_dir``.

    ``result`` is in priority order, or, with ``top`` (the report's first rows) and ``write_list`` (writes
    the list in order; bot.screening.partitions' merge of many parts), in any order: then only the few
    columns the summary counts are collected.

    Files are written into a sibling folder first and moved into place at the end, so that a failed
    run leaves no half-written folder.

    Args:
        previous: an earlier run folder whose summary.json the report compares with.
        card: the learned priority's model card, when it ranked the list (shown in the report).
    """
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out folder")
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        lazy = result.lazy()
        counted = lazy.select("as_of", "overdue_units", "overdue_amount", "currency", "bucket", "strategy")
        summary = _summary(counted.collect(), generated_at or datetime.now(timezone.utc))
        summary["priority"] = "learned" if card else "rules"
        if write_list is None:
            spreadsheet_safe(lazy.select(LIST_COLUMNS)).sink_csv(partial / "collection_list.csv", float_precision=2)
        else:
            write_list(partial / "collection_list.csv")
        if top is None:
            top = lazy.head(TOP_ACCOUNTS_IN_REPORT).select(TOP_COLUMNS).collect()
        (partial / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        charts: tuple[Path, ...] = (_chart(partial / "buckets.png", "By bucket", summary["buckets"]),
                                    _chart(partial / "strategies.png", "By strategy", summary["strategies"]))
        if card:
            charts += (_model_chart(partial / "model.png", card),)
        before = _previous_summary(previous)
        (partial / "report.html").write_text(_report(summary, before, top, charts, card), encoding="utf-8")
        os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Outputs(out_dir, out_dir / "collection_list.csv", out_dir / "summary.json", out_dir / "report.html",
                   tuple(out_dir / p.name for p in charts))


def _summary(result: pl.DataFrame, generated_at: datetime) -> dict[str, Any]:
    days = result.get_column("as_of").unique().sort().to_list()
    overdue = result.filter(pl.col("overdue_amount") > 0)
    return {
        "as_of": days[0].isoformat() if len(days) == 1 else {"from": days[0].isoformat(), "to": days[-1].isoformat()}
        if days else None,
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "accounts": result.height,
        "overdue_accounts": overdue.height,
        "overdue_amount": _amounts(overdue),
        "buckets": _groups(result, "bucket", BUCKETS),
        "strategies": _groups(result, "strategy", STRATEGIES),
    }


def _amounts(frame: pl.DataFrame) -> dict[str, float]:
    sums = frame.group_by("currency").agg((pl.col("overdue_units").sum() / _UNITS).round(2)).sort("currency")
    return dict(sums.iter_rows())


def _groups(result: pl.DataFrame, column: str, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    counts = dict(result.group_by(column).len().iter_rows())
    sums = result.group_by(column, "currency").agg((pl.col("overdue_units").sum() / _UNITS).round(2).alias("amount"))
    amounts: dict[str, dict[str, float]] = {}
    for name, currency, amount in sums.sort(column, "currency").iter_rows():
        if amount:
            amounts.setdefault(name, {})[currency] = amount
    return {n: {"count": counts.get(n, 0), "overdue_amount": amounts.get(n, {})} for n in names}


def _previous_summary(previous: Path | None) -> dict[str, Any] | None:
    if previous is None or not (previous / "summary.json").is_file():
        return None
    loaded: dict[str, Any] = json.loads((previous / "summary.json").read_text(encoding="utf-8"))
    return loaded


def _chart(path: Path, title: str, groups: dict[str, dict[str, Any]]) -> Path:
    """Two bar charts side by side: accounts per group, and overdue amount per group and currency."""
    from matplotlib.figure import Figure  # the object API needs no pyplot state and draws with Agg

    names = list(groups)
    currencies = sorted({c for g in groups.values() for c in g["overdue_amount"]})
    figure = Figure(figsize=(10, 4), layout="constrained")
    counts, amounts = figure.subplots(1, 2)
    counts.bar(names, [groups[n]["count"] for n in names], color="#4472c4")
    counts.set_title(f"{title}: accounts")
    width = 0.8 / max(len(currencies), 1)
    for i, currency in enumerate(currencies):
        offsets = [x + (i - (len(currencies) - 1) / 2) * width for x in range(len(names))]
        amounts.bar(offsets, [groups[n]["overdue_amount"].get(currency, 0) for n in names], width, label=currency)
    amounts.set_xticks(range(len(names)), names)
    amounts.set_title(f"{title}: overdue amount")
    if currencies:
        amounts.legend()
    for axes in (counts, amounts):
        axes.tick_params(axis="x", labelrotation=20)
    figure.savefig(path, dpi=100)
    return path


def _model_chart(path: Path, card: dict[str, Any]) -> Path:
    """The model card's held-out figures: calibration (predicted against observed per decile) and lift."""
    from matplotlib.figure import Figure

    table = card["held_out"]["calibration"]
    predicted, observed = [r["predicted"] for r in table], [r["observed"] for r in table]
    overall = sum(r["observed"] * r["accounts"] for r in table) / sum(r["accounts"] for r in table)
    figure = Figure(figsize=(10, 4), layout="constrained")
    calibration, lift = figure.subplots(1, 2)
    calibration.plot([0, 1], [0, 1], color="#999999", linestyle="--")
    calibration.plot(predicted, observed, marker="o", color="#4472c4")
    calibration.set(title="Calibration (held out)", xlabel="predicted probability", ylabel="observed bad rate")
    deciles = list(range(1, len(table) + 1))
    lift.bar(deciles, [o / overall if overall else 0 for o in reversed(observed)], color="#4472c4")
    lift.axhline(1, color="#999999", linestyle="--")
    lift.set(title="Lift by decile, highest priority first", xlabel="decile", ylabel="bad rate / overall")
    figure.savefig(path, dpi=100)
    return path


def _money(amounts: dict[str, float]) -> str:
    return "; ".join(f"{currency} {amount:,.2f}" for currency, amount in amounts.items()) or "-"


def _delta(now: int, before: int | None) -> str:
    return "new" if before is None else f"{now - before:+d}"


def _group_rows(groups: dict[str, dict[str, Any]], before: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    for name, group in groups.items():
        cells = [name, f"{group['count']:,}", _money(group["overdue_amount"])]
        if before is not None:
            earlier = before.get(name, {}).get("count")
            cells += ["-" if earlier is None else f"{earlier:,}", _delta(group["count"], earlier)]
        rows.append(cells)
    return rows


def _as_of_text(as_of: str | dict[str, str] | None) -> str:
    if as_of is None:
        return "no accounts"
    return as_of if isinstance(as_of, str) else f"{as_of['from']} to {as_of['to']} (by time zone)"


@functools.lru_cache(maxsize=1)
def _report_template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("report.html.j2")


def _report(summary: dict[str, Any], before: dict[str, Any] | None, top: pl.DataFrame,
            charts: tuple[Path, ...], card: dict[str, Any] | None = None) -> str:
    """The manager's page: totals, buckets, strategies, changes since the last run, charts, top accounts."""
    groups = [{"title": title, "compared": before is not None,
               "rows": _group_rows(summary[key], before.get(key) if before is not None else None)}
              for title, key in (("By bucket", "buckets"), ("By strategy", "strategies"))]
    return _report_template().render(
        day=_as_of_text(summary["as_of"]), summary=summary, before=before,
        overdue=_money(summary["overdue_amount"]),
        change=_delta(summary["accounts"], before.get("accounts")) if before is not None else "",
        overdue_before=_money(before.get("overdue_amount", {})) if before is not None else "",
        groups=groups, charts=charts, top_columns=TOP_COLUMNS, card=card,
        top_rows=top.iter_rows(),
    )


# --- the whole run -------------------------------------------------------------------------------


FactsLoader = Callable[[list[str]], pl.DataFrame]


def run(accounts_csv: Path, installments_csv: Path, out_dir: Path, as_of: date | None = None,
        load: FactsLoader | None = None, strategies: Strategies | None = None, previous: Path | None = None,
        quiet: bool = False, model: PriorityModel | None = None, parts: int | None = None) -> Outputs:
    """Read, check, screen and write, with a progress bar on large inputs.

    A ledger bigger than one part (bot.screening.partitions.PART_BYTES) is split and screened part by part,
    so that memory stays bounded; the outputs are the same.

    Args:
        load: given the account ids, returns their facts (None: no facts from Redis).
        parts: how many parts to screen in turn (None: by the size of installments.csv).

    Raises:
        ScreeningInputError: a malformed input file; nothing was written.
    """
    from bot.screening import partitions

    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out folder")
    strategies = strategies or load_strategies()
    size = sum(p.stat().st_size for p in (accounts_csv, installments_csv) if p.is_file())
    hidden = quiet or size < LARGE_INPUT_BYTES or not sys.stderr.isatty()
    parts = parts or (partitions.parts_for(installments_csv) if installments_csv.is_file() else 1)
    if parts > 1:
        return partitions.run(accounts_csv, installments_csv, out_dir, out_dir.with_name(f".{out_dir.name}.parts"),
                              date.today(), as_of, parts, model=model, previous=previous, quiet=hidden,
                              load=load, strategies=strategies)
    with tqdm(total=4, desc="screening", unit="stage", disable=hidden) as bar:
        bar.set_postfix_str("reading and checking")
        accounts, installments = read_ledger(accounts_csv, installments_csv)
        bar.update()
        bar.set_postfix_str("reading records")
        facts = load(accounts.get_column("account_id").to_list()) if load else None
        bar.update()
        bar.set_postfix_str("screening")
        result = screen(accounts, installments, as_of, facts, strategies, model=model)
        bar.update()
        bar.set_postfix_str("writing")
        outputs = write_outputs(result, out_dir, previous, card=model.card if model else None)
        bar.update()
    return outputs
