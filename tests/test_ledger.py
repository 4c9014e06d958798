"""Tests for bot.domain.ledger: CSV validation, the all-or-nothing import and storage in Redis.

Every rejection path is exercised with a small CSV written to ``tmp_path`` and
checked by the file, line and column of the error it produces. The ``services``
fixture provides a ledger on a real Redis that already holds the sample files.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain.ledger import (
    ACCOUNT_COLUMNS,
    INSTALLMENT_COLUMNS,
    Ledger,
    LedgerImportError,
    Overdue,
    RowError,
    overdue,
)
from bot.services import Services
from tests.conftest import SAMPLES
from tests.csv_files import write_csv

TODAY = date(2026, 11, 29)

SAMPLE_PEOPLE = {
    "CN001": ("张伟", "+8613800138000"),
    "CN002": ("李娜", "+8613900139000"),
    "US001": ("John Smith", "+14155550123"),
    "US002": ("Maria Garcia", "+12125550188"),
}


# --- helpers -----------------------------------------------------------------


def account_row(**overrides: str) -> dict[str, str]:
    """A valid accounts.csv row for a new account T001, with some fields replaced."""
    row = {
        "account_id": "T001",
        "name": "Test Person",
        "phone": "+8613700137000",
        "language": "zh",
        "timezone": "Asia/Shanghai",
        "product": "consumer",
        "currency": "CNY",
        "id_last4": "1234",
        "birth_date": "1980-01-01",
        "address": "",
        "employer": "",
        "region": "SH",
    }
    row.update(overrides)
    return row


def installment_row(**overrides: str) -> dict[str, str]:
    """A valid installments.csv row: a sixth instalment on the stored account CN001."""
    row = {
        "account_id": "CN001",
        "installment_no": "6",
        "due_date": "2027-01-15",
        "amount_due": "1250.00",
        "amount_paid": "0.00",
        "paid_date": "",
    }
    row.update(overrides)
    return row


def sample_accounts() -> dict[str, dict[str, str]]:
    """The rows of samples/accounts.csv by account id."""
    with (SAMPLES / "accounts.csv").open(encoding="utf-8", newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}



def write_files(
    tmp_path: Path,
    accounts: list[dict[str, str]] | None = None,
    installments: list[dict[str, str]] | None = None,
) -> tuple[Path, Path]:
    """accounts.csv and installments.csv in tmp_path; a missing list gives a header-only file."""
    return (
        write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, accounts or []),
        write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS, installments or []),
    )


def header_only(path: Path, columns: tuple[str, ...]) -> Path:
    path.write_text(",".join(columns) + "\n", encoding="utf-8")
    return path


async def rejected(ledger: Ledger, accounts_csv: Path, installments_csv: Path) -> list[RowError]:
    """The errors of an import that must be rejected."""
    with pytest.raises(LedgerImportError) as info:
        await ledger.import_files(accounts_csv, installments_csv, TODAY)
    return info.value.errors


def where(errors: list[RowError]) -> list[tuple[str, int, str]]:
    return [(e.file, e.line, e.column) for e in errors]


async def snapshot(redis: Any) -> dict[bytes, bytes]:
    """Every key in Redis with its serialised value."""
    return {key: await redis.dump(key) for key in await redis.keys("*")}


# --- a clean import -------------------------------------------------------------


async def test_samples_import_counts(services: Services) -> None:
    await services.redis.flushdb()

    counts = await services.ledger.import_files(SAMPLES / "accounts.csv", SAMPLES / "installments.csv", TODAY)

    assert counts == (4, 14)


async def test_sample_account_is_read_back(services: Services) -> None:
    account = await services.ledger.get("CN001")

    assert account is not None
    assert (account.name, account.phone) == ("张伟", "+8613800138000")
    assert (account.language, account.currency) == ("zh", "CNY")
    assert account.id_last4 == "561X"
    assert account.birth_date == date(1985, 3, 12)
    assert account.address == "上海市浦东新区世纪大道100号"
    assert [i.installment_no for i in account.installments] == [1, 2, 3, 4, 5]
    assert account.installments[2].amount_paid == Decimal("250.00")
    assert account.installments[2].paid_date == date(2026, 10, 20)
    assert account.installments[1].paid_date is None


async def test_unknown_account_is_none(services: Services) -> None:
    assert await services.ledger.get("NOPE") is None


async def test_for_conversation_resolves_the_phone_pseudonym(services: Services) -> None:
    conversation_id = pseudonym("+14155550123", services.settings.hmac_secret)

    account = await services.ledger.for_conversation(conversation_id)

    assert account is not None
    assert account.account_id == "US001"


async def test_for_conversation_unknown_pseudonym_is_none(services: Services) -> None:
    assert await services.ledger.for_conversation(pseudonym("+8613000000000", services.settings.hmac_secret)) is None


async def test_new_account_without_installments(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(id_last4="561x")])

    counts = await services.ledger.import_files(accounts_csv, installments_csv, TODAY)

    account = await services.ledger.get("T001")
    assert counts == (1, 0)
    assert account is not None
    assert account.installments == ()
    assert account.id_last4 == "561X"


async def test_utf8_with_bom_is_accepted(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row()])
    accounts_csv.write_bytes(b"\xef\xbb\xbf" + accounts_csv.read_bytes())

    assert await services.ledger.import_files(accounts_csv, installments_csv, TODAY) == (1, 0)


async def test_field_of_exactly_500_characters_is_accepted(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(address="x" * 500)])

    assert await services.ledger.import_files(accounts_csv, installments_csv, TODAY) == (1, 0)


async def test_jpy_amount_without_decimals_is_accepted(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path,
        accounts=[account_row(currency="JPY")],
        installments=[installment_row(account_id="T001", installment_no="1", amount_due="15000", amount_paid="0")],
    )

    assert await services.ledger.import_files(accounts_csv, installments_csv, TODAY) == (1, 1)
    account = await services.ledger.get("T001")
    assert account is not None
    assert account.installments[0].amount_due == Decimal("15000")


# --- rejections: whole files ------------------------------------------------------


async def test_accounts_not_utf8_reports_the_line(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row()])
    bad_row = "T002,Jos\xe9 Garc\xeda,+12125550199,en,America/New_York,auto,USD,1111,1970-05-05,,,NY\n"
    accounts_csv.write_bytes(accounts_csv.read_bytes() + bad_row.encode("latin-1"))

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 3, "-")]
    assert "not UTF-8" in errors[0].message


async def test_installments_not_utf8_reports_the_line(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(), installment_row(installment_no="7")]
    )
    bad_row = "CN001,8,2027-03-15,1250.00,0.00,\xa0\n"
    installments_csv.write_bytes(installments_csv.read_bytes() + bad_row.encode("latin-1"))

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 4, "-")]


async def test_not_utf8_line_is_right_after_a_bom(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row()])
    bad_row = "\xc9T2,Name,+12125550199,en,America/New_York,auto,USD,1111,1970-05-05,,,NY\n"
    accounts_csv.write_bytes(b"\xef\xbb\xbf" + accounts_csv.read_bytes() + bad_row.encode("latin-1"))

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 3, "-")]


async def test_accounts_header_missing_columns(services: Services, tmp_path: Path) -> None:
    columns = tuple(c for c in ACCOUNT_COLUMNS if c not in ("phone", "region"))
    accounts_csv = header_only(tmp_path / "accounts.csv", columns)
    installments_csv = header_only(tmp_path / "installments.csv", INSTALLMENT_COLUMNS)

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 1, "phone,region")]


async def test_installments_header_missing_columns(services: Services, tmp_path: Path) -> None:
    accounts_csv = header_only(tmp_path / "accounts.csv", ACCOUNT_COLUMNS)
    installments_csv = header_only(tmp_path / "installments.csv", INSTALLMENT_COLUMNS[:-1])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 1, "paid_date")]


async def test_accounts_wrong_field_count(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row()])
    with accounts_csv.open("a", encoding="utf-8") as handle:
        handle.write("T002,Two,+8613700137002,zh,Asia/Shanghai,consumer,CNY,1234,1980-01-01,,,SH,extra\n")

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 3, "-")]
    assert errors[0].message == "has 13 fields, header has 12"


async def test_installments_wrong_field_count(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path)
    with installments_csv.open("a", encoding="utf-8") as handle:
        handle.write("CN001,6,2027-01-15,1250.00\n")

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, "-")]
    assert errors[0].message == "has 4 fields, header has 6"


# --- rejections: account fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("account_id", "T 001"),
        ("account_id", "T001/x"),
        ("account_id", ""),
        ("account_id", "T" * 65),
        ("name", ""),
        ("name", "   "),
        ("phone", "13700137000"),
        ("phone", "+86 137 0013 7000"),
        ("phone", "+08613700137000"),
        ("phone", "+86137"),
        ("phone", "+861370013700012345"),
        ("language", "fr"),
        ("language", "ZH"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "UTC+8"),
        ("timezone", "/etc/passwd"),
        ("timezone", ""),
        ("product", "loan"),
        ("currency", "RMB"),
        ("currency", "cny"),
        ("id_last4", "12X4"),
        ("id_last4", "123"),
        ("id_last4", "12345"),
        ("birth_date", "1980/01/01"),
        ("birth_date", "01-01-1980"),
        ("birth_date", "1980-1-1"),
        ("birth_date", "2023-02-30"),
        ("birth_date", "2027-01-01"),
        ("birth_date", "2026-11-29"),
        ("birth_date", "1899-12-31"),
        ("name", "x" * 501),
        ("address", "x" * 501),
        ("employer", "y" * 501),
    ],
)
async def test_bad_account_field_is_rejected(services: Services, tmp_path: Path, column: str, value: str) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(**{column: value})])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 2, column)]


async def test_impossible_birth_date_message(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(birth_date="2023-02-30")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert str(errors[0]) == "accounts.csv:2: birth_date: 2023-02-30 is not a real calendar date"


async def test_future_birth_date_message(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(birth_date="2027-01-01")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert errors[0].message == "must be after 1900-01-01 and in the past"


async def test_too_long_field_message(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(address="x" * 501)])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert errors[0].message == "longer than 500 characters"


async def test_duplicate_account_id(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, accounts=[account_row(), account_row(phone="+8613700137001")]
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 3, "account_id")]
    assert errors[0].message == "appears twice in this file"


async def test_duplicate_phone(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(), account_row(account_id="T002")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 3, "phone")]
    assert errors[0].message == "already used on line 2"


async def test_phone_of_a_stored_account_is_rejected(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[account_row(phone="+8613800138000")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 2, "phone")]


async def test_every_bad_row_is_listed(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path,
        accounts=[
            account_row(phone="12345"),
            account_row(account_id="T002", phone="+8613700137002"),
            account_row(account_id="T003", phone="+8613700137003", language="de"),
        ],
        installments=[installment_row(due_date="soon")],
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [
        ("accounts.csv", 2, "phone"),
        ("accounts.csv", 4, "language"),
        ("installments.csv", 2, "due_date"),
    ]


# --- rejections: installment fields ---------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("installment_no", "0"),
        ("installment_no", "-1"),
        ("installment_no", "1.0"),
        ("installment_no", "first"),
        ("installment_no", ""),
        ("due_date", "2027/01/15"),
        ("due_date", "15-01-2027"),
        ("due_date", "2027-02-30"),
        ("due_date", ""),
        ("amount_due", "¥1250.00"),
        ("amount_due", "$1250.00"),
        ("amount_due", "1250.00 CNY"),
        ("amount_due", "1,250.00"),
        ("amount_due", "-1250.00"),
        ("amount_due", ""),
        ("amount_due", "1.005"),
        ("amount_paid", "0.001"),
        ("amount_paid", "￥0"),
        ("paid_date", "2026-11-30"),
        ("paid_date", "2026/11/20"),
    ],
)
async def test_bad_installment_field_is_rejected(services: Services, tmp_path: Path, column: str, value: str) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, installments=[installment_row(**{column: value})])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, column)]


async def test_installment_for_unknown_account(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, installments=[installment_row(account_id="ZZ999")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, "account_id")]


async def test_currency_sign_message(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, installments=[installment_row(amount_due="¥1250.00")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert errors[0].message == "must be a decimal number such as 1250.00, without currency sign"


async def test_too_many_decimals_for_cny(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(tmp_path, installments=[installment_row(amount_due="1.005")])

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert errors[0].message == "has more decimals than CNY allows"


async def test_jpy_allows_no_decimals(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path,
        accounts=[account_row(currency="JPY")],
        installments=[installment_row(account_id="T001", installment_no="1", amount_due="15000.5", amount_paid="0")],
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, "amount_due")]
    assert errors[0].message == "has more decimals than JPY allows"


async def test_amount_paid_without_paid_date(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(amount_paid="100.00", paid_date="")]
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, "paid_date")]
    assert errors[0].message == "is empty but amount_paid is above zero"


async def test_paid_date_in_the_future(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(amount_paid="100.00", paid_date="2026-11-30")]
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 2, "paid_date")]
    assert errors[0].message == "is in the future"


async def test_paid_today_is_accepted(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(amount_paid="100.00", paid_date="2026-11-29")]
    )

    assert await services.ledger.import_files(accounts_csv, installments_csv, TODAY) == (0, 1)


async def test_duplicate_installment_no(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(), installment_row(amount_due="99.00")]
    )

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("installments.csv", 3, "installment_no")]
    assert errors[0].message == "appears twice for this account"


async def test_same_installment_no_on_two_accounts_is_fine(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path, installments=[installment_row(), installment_row(account_id="CN002", installment_no="6")]
    )

    assert await services.ledger.import_files(accounts_csv, installments_csv, TODAY) == (0, 2)


# --- all or nothing, upserts ---------------------------------------------------------


async def test_rejected_import_changes_nothing(services: Services, tmp_path: Path) -> None:
    changed_cn001 = sample_accounts()["CN001"] | {"name": "王芳", "phone": "+8613800138999"}
    accounts_csv, installments_csv = write_files(
        tmp_path,
        accounts=[changed_cn001, account_row(), account_row(account_id="T002", phone="+8613700137002", product="x")],
        installments=[
            installment_row(installment_no="2", due_date="2026-09-15", amount_paid="1250.00", paid_date="2026-11-01"),
            installment_row(account_id="T001", installment_no="1"),
        ],
    )
    before = await snapshot(services.redis)

    errors = await rejected(services.ledger, accounts_csv, installments_csv)

    assert where(errors) == [("accounts.csv", 4, "product")]
    assert await snapshot(services.redis) == before


async def test_reimporting_the_samples_changes_no_account(services: Services) -> None:
    before = {a: await services.ledger.get(a) for a in SAMPLE_PEOPLE}

    counts = await services.ledger.import_files(SAMPLES / "accounts.csv", SAMPLES / "installments.csv", TODAY)

    assert counts == (4, 14)
    assert {a: await services.ledger.get(a) for a in SAMPLE_PEOPLE} == before


async def test_reimport_upserts_an_installment(services: Services, tmp_path: Path) -> None:
    accounts_csv, installments_csv = write_files(
        tmp_path,
        installments=[
            installment_row(installment_no="2", due_date="2026-09-15", amount_paid="1250.00", paid_date="2026-11-20")
        ],
    )

    counts = await services.ledger.import_files(accounts_csv, installments_csv, TODAY)

    account = await services.ledger.get("CN001")
    assert counts == (0, 1)
    assert account is not None
    assert [i.installment_no for i in account.installments] == [1, 2, 3, 4, 5]
    assert account.installments[1].amount_paid == Decimal("1250.00")
    assert account.installments[1].paid_date == date(2026, 11, 20)
    assert account.installments[2].amount_paid == Decimal("250.00")
    assert overdue(account, TODAY) == Overdue(Decimal("2250.00"), 2, date(2026, 10, 15))


async def test_reimport_upserts_account_fields_and_keeps_installments(services: Services, tmp_path: Path) -> None:
    changed = sample_accounts()["CN002"] | {"name": "李娜娜", "region": "BJ"}
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[changed])

    await services.ledger.import_files(accounts_csv, installments_csv, TODAY)

    account = await services.ledger.get("CN002")
    assert account is not None
    assert (account.name, account.region) == ("李娜娜", "BJ")
    assert [i.installment_no for i in account.installments] == [1, 2, 3]


async def test_phone_change_moves_the_pseudonym(services: Services, tmp_path: Path) -> None:
    secret = services.settings.hmac_secret
    changed = sample_accounts()["CN002"] | {"phone": "+8613900139999"}
    accounts_csv, installments_csv = write_files(tmp_path, accounts=[changed])

    await services.ledger.import_files(accounts_csv, installments_csv, TODAY)

    moved = await services.ledger.for_conversation(pseudonym("+8613900139999", secret))
    assert await services.ledger.for_conversation(pseudonym("+8613900139000", secret)) is None
    assert moved is not None
    assert moved.account_id == "CN002"
    assert len(moved.installments) == 3


async def test_phone_swap_keeps_both_pseudonyms(services: Services, tmp_path: Path) -> None:
    secret = services.settings.hmac_secret
    rows = sample_accounts()
    swapped = [rows["CN001"] | {"phone": "+8613900139000"}, rows["CN002"] | {"phone": "+8613800138000"}]
    accounts_csv, installments_csv = write_files(tmp_path, accounts=swapped)

    await services.ledger.import_files(accounts_csv, installments_csv, TODAY)

    first = await services.ledger.for_conversation(pseudonym("+8613900139000", secret))
    second = await services.ledger.for_conversation(pseudonym("+8613800138000", secret))
    assert (first and first.account_id, second and second.account_id) == ("CN001", "CN002")


# --- overdue ----------------------------------------------------------------------


async def test_overdue_on_cn001(services: Services) -> None:
    account = await services.ledger.get("CN001")
    assert account is not None

    result = overdue(account, TODAY)

    assert result == Overdue(amount=Decimal("3500.00"), count=3, oldest_due=date(2026, 9, 15))
    assert str(result.amount) == "3500.00"


async def test_nothing_overdue_on_cn002(services: Services) -> None:
    account = await services.ledger.get("CN002")
    assert account is not None

    assert overdue(account, TODAY) == Overdue(Decimal(0), 0, None)


async def test_due_today_is_not_overdue_yet(services: Services) -> None:
    account = await services.ledger.get("US002")
    assert account is not None

    assert overdue(account, date(2026, 12, 5)) == Overdue(Decimal("55.00"), 1, date(2026, 11, 5))
    assert overdue(account, date(2026, 12, 6)) == Overdue(Decimal("150.00"), 2, date(2026, 11, 5))


# --- what Redis holds ---------------------------------------------------------------


async def test_stored_account_is_encrypted(services: Services) -> None:
    raw = await services.redis.get(keys.account("CN001"))

    assert "张伟".encode() not in raw
    assert b"13800138000" not in raw
    assert b"561X" not in raw
    assert services.vault.open(raw)["name"] == "张伟"


@pytest.mark.parametrize("account_id", sorted(SAMPLE_PEOPLE))
async def test_no_sample_value_is_stored_in_clear(services: Services, account_id: str) -> None:
    name, phone = SAMPLE_PEOPLE[account_id]

    for key in await services.redis.keys("*"):
        if await services.redis.type(key) != b"string":
            continue
        raw = await services.redis.get(key)
        assert name.encode() not in raw
        assert phone[-10:].encode() not in raw


async def test_no_key_name_holds_a_phone_or_name(services: Services) -> None:
    names = [k.decode() for k in await services.redis.keys("*")]

    assert len(names) == 9  # 4 accounts, 4 pseudonyms, the id set
    for name, phone in SAMPLE_PEOPLE.values():
        for key in names:
            assert phone[-7:] not in key
            assert name not in key
            assert name.split()[0] not in key
