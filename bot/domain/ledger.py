"""The ledger: accounts and their repayment records, imported from CSV.

A file with any invalid row is rejected as a whole; nothing stored changes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import get_currency_precision, is_currency

from bot.core import keys
from bot.core.crypto import Vault, pseudonym

ACCOUNT_COLUMNS = (
    "account_id", "name", "phone", "language", "timezone", "product", "currency",
    "id_last4", "birth_date", "address", "employer", "region",
)
INSTALLMENT_COLUMNS = ("account_id", "installment_no", "due_date", "amount_due", "amount_paid", "paid_date")
# Optional: for revolving products, the least payment that keeps the account current (the rest of the
# statement balance revolves). Without it, the whole amount_due is due.
OPTIONAL_INSTALLMENT_COLUMNS = ("minimum_due",)
OPTIONAL_ACCOUNT_COLUMNS = {"address", "employer", "region"}
LANGUAGES = ("zh", "en")
PRODUCTS = ("mortgage", "auto", "consumer", "credit_card")
# Products whose statements may have a minimum payment and a credit balance (a negative amount_due).
REVOLVING_PRODUCTS = ("credit_card",)
MAX_FIELD_LENGTH = 500

# What a whole value must look like; bot.screening.priority checks the same shapes with polars.
ACCOUNT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
E164_PATTERN = r"\+[1-9][0-9]{6,14}"  # [0-9], not \d: \d also takes full-width and other scripts' digits
ID_LAST4_PATTERN = r"[0-9]{3}[0-9X]"
AMOUNT_PATTERN = r"[0-9]{1,12}(\.[0-9]{1,4})?"
SIGNED_AMOUNT_PATTERN = r"-?[0-9]{1,12}(\.[0-9]{1,4})?"
ISO_DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# Why a value is refused, per column (bot.screening.priority gives the same reasons).
REASONS = {
    "account_id": "1-64 letters, digits, - or _",
    "name": "must not be empty",
    "phone": "must be E.164, e.g. +8613800138000",
    "language": "must be zh or en",
    "timezone": "must be an IANA zone such as Asia/Shanghai",
    "product": f"must be one of {', '.join(PRODUCTS)}",
    "currency": "must be an ISO 4217 code such as CNY or USD",
    "id_last4": "must be 4 characters: 3 digits then a digit or X",
    "birth_date": "must be after 1900-01-01 and in the past",
    "amount": "must be a decimal number such as 1250.00, without currency sign",
    "credit_balance": f"is negative: a credit balance is allowed only on {', '.join(REVOLVING_PRODUCTS)} accounts",
    "credit_minimum": "must be empty or 0 when amount_due is a credit balance",
    "minimum_not_revolving": f"only {', '.join(REVOLVING_PRODUCTS)} accounts have a minimum payment; leave it empty",
    "minimum_above_due": "is above amount_due; the minimum payment is part of the statement balance",
}

_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_E164 = re.compile(E164_PATTERN)
_ID_LAST4 = re.compile(ID_LAST4_PATTERN)
_AMOUNT = re.compile(AMOUNT_PATTERN)
_SIGNED_AMOUNT = re.compile(SIGNED_AMOUNT_PATTERN)


@dataclass(frozen=True)
class RowError:
    """One reason a row was rejected."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.column}: {self.message}"


class LedgerImportError(ValueError):
    """The import was rejected; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} invalid row(s); nothing was imported")
        self.errors = errors


@dataclass(frozen=True)
class Installment:
    """One scheduled repayment (or, for a card, one statement) and what was paid against it.

    ``amount_due`` below zero is a card's credit balance: nothing is due. ``minimum_due``, when set, is
    what must be paid by the due date to stay current; the rest of a card's balance revolves.
    """

    installment_no: int
    due_date: date
    amount_due: Decimal
    amount_paid: Decimal
    paid_date: date | None
    minimum_due: Decimal | None = None

    @property
    def required(self) -> Decimal:
        """What must be paid by the due date: the minimum when there is one, never below zero."""
        return max(self.amount_due if self.minimum_due is None else self.minimum_due, Decimal(0))

    @property
    def outstanding(self) -> Decimal:
        """The unpaid part of what was required (what is overdue once the due date has passed)."""
        return max(self.required - self.amount_paid, Decimal(0))


@dataclass(frozen=True)
class Account:
    """A borrower's account as the ledger holds it."""

    account_id: str
    name: str
    phone: str
    language: str
    timezone: str
    product: str
    currency: str
    id_last4: str
    birth_date: date
    address: str = ""
    employer: str = ""
    region: str = ""
    installments: tuple[Installment, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Overdue:
    """What is overdue on an account on a given day."""

    amount: Decimal
    count: int
    oldest_due: date | None
    minimum_only: bool = False  # the amount is unpaid minimum payments; the rest of the balance revolves


def overdue(account: Account, today: date) -> Overdue:
    """Sum the unpaid parts of instalments whose due date has passed (for a card, of the minimum payments)."""
    late = [i for i in account.installments if i.due_date < today and i.outstanding > 0]
    return Overdue(
        amount=sum((i.outstanding for i in late), Decimal(0)),
        count=len(late),
        oldest_due=min((i.due_date for i in late), default=None),
        minimum_only=any(i.minimum_due is not None for i in late),
    )


def statement_balance(account: Account, today: date) -> Decimal | None:
    """A card's latest statement balance before ``today`` (negative: a credit), or None for an instalment loan."""
    issued = [i for i in account.installments if i.due_date < today and i.minimum_due is not None]
    return max(issued, key=lambda i: i.due_date).amount_due if issued else None


# --- parsing ---------------------------------------------------------------


def _rows(path: Path, columns: tuple[str, ...], errors: list[RowError]) -> Iterator[tuple[int, dict[str, str]]]:
    name = path.name
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
        line = raw[: exc.start + bom].count(b"\n") + 1
        errors.append(RowError(name, line, "-", "not UTF-8; save the file as UTF-8 CSV"))
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from _cells(reader, name, columns, errors)
    except csv.Error as exc:  # a NUL byte, a field over the csv module's limit
        errors.append(RowError(name, reader.line_num, "-", f"not a readable CSV row ({exc})"))


def _cells(reader: Any, name: str, columns: tuple[str, ...],
           errors: list[RowError]) -> Iterator[tuple[int, dict[str, str]]]:
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in columns if c not in header]
    if missing:
        errors.append(RowError(name, 1, ",".join(missing), f"header lacks column(s); expected {','.join(columns)}"))
        return
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            errors.append(RowError(name, line, "-", f"has {len(cells)} fields, header has {len(header)}"))
            continue
        yield line, {h: c.strip() for h, c in zip(header, cells, strict=False)}


def _iso_date(value: str) -> date:
    if not re.fullmatch(ISO_DATE_PATTERN, value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a real calendar date") from None


def _account(row: dict[str, str], today: date) -> Account:
    checks: list[tuple[str, bool]] = [
        ("account_id", bool(_ACCOUNT_ID.fullmatch(row["account_id"]))),
        ("name", bool(row["name"])),
        ("phone", bool(_E164.fullmatch(row["phone"]))),
        ("language", row["language"] in LANGUAGES),
        ("product", row["product"] in PRODUCTS),
        ("currency", is_currency(row["currency"])),
        ("id_last4", bool(_ID_LAST4.fullmatch(row["id_last4"].upper()))),
    ]
    for column, ok in checks:
        if not ok:
            raise _ColumnError(column, REASONS[column])
    try:
        ZoneInfo(row["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise _ColumnError("timezone", REASONS["timezone"]) from None
    birth = _column_date(row, "birth_date")
    if not date(1900, 1, 1) <= birth < today:
        raise _ColumnError("birth_date", REASONS["birth_date"])
    return Account(
        account_id=row["account_id"], name=row["name"], phone=row["phone"], language=row["language"],
        timezone=row["timezone"], product=row["product"], currency=row["currency"],
        id_last4=row["id_last4"].upper(), birth_date=birth,
        address=row["address"], employer=row["employer"], region=row["region"],
    )


def _column_date(row: dict[str, str], column: str) -> date:
    try:
        return _iso_date(row[column])
    except ValueError as exc:
        raise _ColumnError(column, str(exc)) from None


def _amount(row: dict[str, str], column: str, currency: str | None, signed: bool = False) -> Decimal:
    value = row[column]
    if not (_SIGNED_AMOUNT if signed else _AMOUNT).fullmatch(value):
        raise _ColumnError(column, REASONS["amount"])
    amount = Decimal(value)
    if currency and -int(amount.as_tuple().exponent) > get_currency_precision(currency):
        raise _ColumnError(column, f"has more decimals than {currency} allows")
    return amount


def _installment(row: dict[str, str], currency: str | None, revolving: bool, today: date) -> Installment:
    if not row["installment_no"].isdigit() or int(row["installment_no"]) < 1:
        raise _ColumnError("installment_no", "must be a whole number from 1")
    due = _column_date(row, "due_date")
    paid_date = _column_date(row, "paid_date") if row["paid_date"] else None
    if paid_date and paid_date > today:
        raise _ColumnError("paid_date", "is in the future")
    amount_due = _amount(row, "amount_due", currency, signed=True)
    if amount_due < 0 and not revolving:
        raise _ColumnError("amount_due", REASONS["credit_balance"])
    amount_paid = _amount(row, "amount_paid", currency)
    if amount_paid > 0 and paid_date is None:
        raise _ColumnError("paid_date", "is empty but amount_paid is above zero")
    minimum = _minimum_due(row, currency, revolving, amount_due)
    return Installment(int(row["installment_no"]), due, amount_due, amount_paid, paid_date, minimum)


def _minimum_due(row: dict[str, str], currency: str | None, revolving: bool, amount_due: Decimal) -> Decimal | None:
    if not row.get("minimum_due"):
        return None
    if not revolving:
        raise _ColumnError("minimum_due", REASONS["minimum_not_revolving"])
    minimum = _amount(row, "minimum_due", currency)
    if amount_due < 0 and minimum > 0:
        raise _ColumnError("minimum_due", REASONS["credit_minimum"])
    if minimum > max(amount_due, Decimal(0)):
        raise _ColumnError("minimum_due", REASONS["minimum_above_due"])
    return minimum


class _ColumnError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _too_long(row: dict[str, str]) -> str | None:
    return next((c for c, v in row.items() if len(v) > MAX_FIELD_LENGTH), None)


def parse_accounts(
    path: Path, today: date, errors: list[RowError], lines: dict[str, int] | None = None
) -> dict[str, Account]:
    """Parse accounts.csv, appending every problem to ``errors``.

    Args:
        lines: filled with each account's line number, when given.
    """
    lines = {} if lines is None else lines
    accounts: dict[str, Account] = {}
    phones: dict[str, int] = {}
    for line, row in _rows(path, ACCOUNT_COLUMNS, errors):
        try:
            if column := _too_long(row):
                raise _ColumnError(column, f"longer than {MAX_FIELD_LENGTH} characters")
            account = _account(row, today)
        except _ColumnError as exc:
            errors.append(RowError(path.name, line, exc.column, str(exc)))
            continue
        if account.account_id in accounts:
            errors.append(RowError(path.name, line, "account_id", "appears twice in this file"))
        elif account.phone in phones:
            errors.append(RowError(path.name, line, "phone", f"already used on line {phones[account.phone]}"))
        else:
            accounts[account.account_id] = account
            phones[account.phone] = line
            lines[account.account_id] = line
    return accounts


def parse_installments(
    path: Path, currencies: dict[str, str], today: date, errors: list[RowError],
    revolving: frozenset[str] = frozenset(),
) -> dict[str, dict[int, Installment]]:
    """Parse installments.csv; ``currencies`` maps every known account to its currency.

    Args:
        revolving: the accounts whose product is one of REVOLVING_PRODUCTS (minimum payments, credits).
    """
    found: dict[str, dict[int, Installment]] = {}
    for line, row in _rows(path, INSTALLMENT_COLUMNS, errors):
        account_id = row["account_id"]
        try:
            if account_id not in currencies:
                raise _ColumnError("account_id", "is not in accounts.csv nor in the stored ledger")
            installment = _installment(row, currencies[account_id], account_id in revolving, today)
        except _ColumnError as exc:
            errors.append(RowError(path.name, line, exc.column, str(exc)))
            continue
        per_account = found.setdefault(account_id, {})
        if installment.installment_no in per_account:
            errors.append(RowError(path.name, line, "installment_no", "appears twice for this account"))
        per_account[installment.installment_no] = installment
    return found


# --- storage ---------------------------------------------------------------


def _to_record(account: Account) -> dict[str, Any]:
    record = asdict(account)
    record["birth_date"] = account.birth_date.isoformat()
    record["installments"] = [
        {
            "installment_no": i.installment_no,
            "due_date": i.due_date.isoformat(),
            "amount_due": str(i.amount_due),
            "amount_paid": str(i.amount_paid),
            "paid_date": i.paid_date.isoformat() if i.paid_date else None,
            **({"minimum_due": str(i.minimum_due)} if i.minimum_due is not None else {}),
        }
        for i in account.installments
    ]
    return record


def _from_record(record: dict[str, Any]) -> Account:
    installments = tuple(
        Installment(
            installment_no=i["installment_no"],
            due_date=date.fromisoformat(i["due_date"]),
            amount_due=Decimal(i["amount_due"]),
            amount_paid=Decimal(i["amount_paid"]),
            paid_date=date.fromisoformat(i["paid_date"]) if i["paid_date"] else None,
            minimum_due=Decimal(i["minimum_due"]) if i.get("minimum_due") is not None else None,
        )
        for i in record["installments"]
    )
    fields = {k: v for k, v in record.items() if k not in ("installments", "birth_date")}
    return Account(**fields, birth_date=date.fromisoformat(record["birth_date"]), installments=installments)


# The account a pseudonym points to, in one round trip (every turn asks, in the gateway and the actions).
# ARGV: the account records' prefix; then, to note that the borrower replied, the last-reply prefix, the
# time and how long it is kept.
_BY_PSEUDONYM = """
local account_id = redis.call('GET', KEYS[1])
if not account_id then return false end
if ARGV[2] then redis.call('SET', ARGV[2] .. account_id, ARGV[3], 'EX', ARGV[4]) end
return redis.call('GET', ARGV[1] .. account_id)
"""


class Ledger:
    """Reads and writes accounts in Redis, encrypted, indexed by pseudonym."""

    def __init__(self, redis: Any, vault: Vault, hmac_secret: bytes) -> None:
        self._redis = redis
        self._vault = vault
        self._secret = hmac_secret
        self._by_pseudonym = redis.register_script(_BY_PSEUDONYM)

    async def get(self, account_id: str) -> Account | None:
        """The stored account, or None."""
        sealed = await self._redis.get(keys.account(account_id))
        return _from_record(self._vault.open(sealed)) if sealed else None

    async def get_many(self, account_ids: list[str]) -> dict[str, Account]:
        """The stored accounts among ``account_ids`` (one round trip), by id."""
        sealed = await self._redis.mget([keys.account(i) for i in account_ids]) if account_ids else []
        return {i: _from_record(self._vault.open(s)) for i, s in zip(account_ids, sealed, strict=True) if s}

    async def for_conversation(self, conversation_id: str) -> Account | None:
        """The account whose phone number has this pseudonym, or None."""
        sealed = await self._by_pseudonym(keys=[keys.account_by_pseudonym(conversation_id)],
                                          args=[keys.account("")])
        return self.account_from(sealed)

    def queue_for_conversation(self, pipe: Any, conversation_id: str, reply_kept_seconds: int = 0) -> None:
        """``for_conversation``'s lookup queued on a pipeline, to go with other reads in one round trip; its
        answer is read with ``account_from``. With ``reply_kept_seconds``, it also notes that the account's
        borrower replied now (campaigns call only those who did not). The pipeline raises NoScriptError while
        Redis does not know the script (first use, or a restart): ``load_script`` loads it."""
        noted = [keys.last_reply(""), int(time.time()), reply_kept_seconds] if reply_kept_seconds else []
        pipe.evalsha(self._by_pseudonym.sha, 1, keys.account_by_pseudonym(conversation_id), keys.account(""), *noted)

    async def load_script(self) -> None:
        await self._redis.script_load(_BY_PSEUDONYM)

    def account_from(self, sealed: bytes | None) -> Account | None:
        return _from_record(self._vault.open(sealed)) if sealed else None

    async def import_files(self, accounts_csv: Path, installments_csv: Path, today: date) -> tuple[int, int]:
        """Validate both files and upsert them in one transaction.

        Returns:
            The number of accounts and of instalment rows written.

        Raises:
            LedgerImportError: listing every invalid row; nothing was written.
        """
        errors: list[RowError] = []
        stored = {a: await self.get(a) for a in await self._stored_ids()}
        lines: dict[str, int] = {}
        accounts = parse_accounts(accounts_csv, today, errors, lines)
        errors += _numbers_still_taken(accounts, stored, accounts_csv.name, lines)
        known = {i: a for i, a in stored.items() if a} | accounts
        currencies = {i: a.currency for i, a in known.items()}
        revolving = frozenset(i for i, a in known.items() if a.product in REVOLVING_PRODUCTS)
        installments = parse_installments(installments_csv, currencies, today, errors, revolving)
        if errors:
            raise LedgerImportError(errors)
        merged = self._merge(stored, accounts, installments)
        await self._write(merged, stored)
        return len(accounts), sum(len(v) for v in installments.values())

    async def _stored_ids(self) -> list[str]:
        return [m.decode() for m in await self._redis.smembers(keys.ACCOUNT_IDS)]

    @staticmethod
    def _merge(
        stored: dict[str, Account | None],
        accounts: dict[str, Account],
        installments: dict[str, dict[int, Installment]],
    ) -> list[Account]:
        merged = []
        for account_id in accounts.keys() | installments.keys():
            base = accounts.get(account_id) or stored[account_id]
            assert base is not None
            previous = stored.get(account_id)
            by_no = {i.installment_no: i for i in (previous.installments if previous else ())}
            by_no.update(installments.get(account_id, {}))
            merged.append(_replace_installments(base, by_no))
        return merged

    async def _write(self, merged: list[Account], stored: dict[str, Account | None]) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            # Old index entries go first, so that two accounts swapping numbers both resolve.
            for account in merged:
                previous = stored.get(account.account_id)
                if previous and previous.phone != account.phone:
                    tx.delete(keys.account_by_pseudonym(pseudonym(previous.phone, self._secret)))
            for account in merged:
                tx.set(keys.account(account.account_id), self._vault.seal(_to_record(account)))
                tx.set(keys.account_by_pseudonym(pseudonym(account.phone, self._secret)), account.account_id)
                tx.sadd(keys.ACCOUNT_IDS, account.account_id)
            await tx.execute()


def _numbers_still_taken(
    accounts: dict[str, Account], stored: dict[str, Account | None], file: str, lines: dict[str, int]
) -> list[RowError]:
    """Numbers in the file that another stored account keeps after this import."""
    owners = {a.phone: i for i, a in stored.items() if a and i not in accounts}
    return [
        RowError(file, lines[i], "phone", f"already belongs to account {owners[a.phone]}")
        for i, a in accounts.items() if a.phone in owners
    ]


def _replace_installments(account: Account, by_no: dict[int, Installment]) -> Account:
    fields = {k: getattr(account, k) for k in ACCOUNT_COLUMNS}
    return Account(**fields, installments=tuple(by_no[n] for n in sorted(by_no)))
