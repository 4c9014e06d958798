"""Cards in the ledger: minimum payments and credit balances, read the same by the import and by screening."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain.ledger import (
    ACCOUNT_COLUMNS,
    INSTALLMENT_COLUMNS,
    REASONS,
    Account,
    Installment,
    RowError,
    overdue,
    parse_installments,
    statement_balance,
)
from bot.screening.priority import ScreeningInputError, read_ledger, screen
from tests.csv_files import write_csv

AS_OF = date(2026, 6, 1)
READ_DAY = date(2026, 12, 31)
COLUMNS = (*INSTALLMENT_COLUMNS, "minimum_due")


def account(account_id: str, n: int, product: str) -> dict[str, str]:
    return {"account_id": account_id, "name": "Test", "phone": f"+861380000{n:04d}", "language": "zh",
            "timezone": "Asia/Shanghai", "product": product, "currency": "CNY", "id_last4": "1234",
            "birth_date": "1980-01-01", "address": "", "employer": "", "region": "SH"}


def statement(account_id: str, no: int, due: str, amount_due: str, paid: str = "0", paid_on: str = "",
              minimum: str = "") -> dict[str, str]:
    return {"account_id": account_id, "installment_no": str(no), "due_date": due, "amount_due": amount_due,
            "amount_paid": paid, "paid_date": paid_on, "minimum_due": minimum}



def both_readers(tmp_path: Path, rows: list[dict[str, str]]) -> tuple[list[RowError], list[RowError]]:
    """The import's errors and screening's errors for the same installments.csv."""
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS,
                     [account("CARD", 1, "credit_card"), account("LOAN", 2, "consumer")])
    installments = write_csv(tmp_path / "installments.csv", COLUMNS, rows)
    imported: list[RowError] = []
    parse_installments(installments, {"CARD": "CNY", "LOAN": "CNY"}, READ_DAY, imported, frozenset({"CARD"}))
    try:
        read_ledger(accounts, installments, today=READ_DAY)
        screened: list[RowError] = []
    except ScreeningInputError as exc:
        screened = exc.errors
    return imported, screened


@pytest.mark.parametrize(("row", "column", "reason"), [
    (statement("LOAN", 1, "2026-05-10", "-50.00"), "amount_due", REASONS["credit_balance"]),
    (statement("LOAN", 1, "2026-05-10", "500.00", minimum="50.00"), "minimum_due", REASONS["minimum_not_revolving"]),
    (statement("CARD", 1, "2026-05-10", "500.00", minimum="600.00"), "minimum_due", REASONS["minimum_above_due"]),
    (statement("CARD", 1, "2026-05-10", "-80.00", minimum="10.00"), "minimum_due", REASONS["credit_minimum"]),
    (statement("CARD", 1, "2026-05-10", "500.00", minimum="5O.00"), "minimum_due", REASONS["amount"]),
    (statement("CARD", 1, "2026-05-10", "500.00", minimum="-5.00"), "minimum_due", REASONS["amount"]),
    (statement("CARD", 1, "2026-05-10", "500.00", paid="-5.00"), "amount_paid", REASONS["amount"]),
])
def test_a_bad_card_value_is_refused_with_its_true_reason_by_both_readers(
        tmp_path: Path, row: dict[str, str], column: str, reason: str) -> None:
    imported, screened = both_readers(tmp_path, [row])
    assert [(e.line, e.column, e.message) for e in imported] == [(2, column, reason)]
    assert [(e.line, e.column, e.message) for e in screened] == [(2, column, reason)]


def test_credit_balances_and_minimums_are_accepted_on_cards(tmp_path: Path) -> None:
    rows = [statement("CARD", 1, "2026-04-10", "-120.50", minimum="0"),
            statement("CARD", 2, "2026-05-10", "2000.00", "100.00", "2026-05-09", minimum="100.00"),
            statement("LOAN", 1, "2026-05-10", "300.00")]
    assert both_readers(tmp_path, rows) == ([], [])


def test_a_file_without_the_minimum_column_is_still_valid(tmp_path: Path) -> None:
    accounts = write_csv(tmp_path / "a.csv", ACCOUNT_COLUMNS, [account("LOAN", 2, "consumer")])
    rows = [{k: v for k, v in statement("LOAN", 1, "2026-05-10", "300.00").items() if k != "minimum_due"}]
    installments = write_csv(tmp_path / "i.csv", INSTALLMENT_COLUMNS, rows)
    frames = read_ledger(accounts, installments, today=READ_DAY)
    assert screen(*frames, as_of=AS_OF).row(0, named=True)["overdue_amount"] == 300.0


def card(*installments: Installment) -> Account:
    return Account("CARD", "Test", "+8613800000001", "en", "Asia/Shanghai", "credit_card", "CNY", "1234",
                   date(1980, 1, 1), installments=installments)


def test_a_card_paying_its_minimum_is_not_overdue() -> None:
    paid_minimum = Installment(1, date(2026, 5, 10), Decimal("2000"), Decimal("100"), date(2026, 5, 9), Decimal("100"))
    assert overdue(card(paid_minimum), AS_OF).amount == 0
    assert statement_balance(card(paid_minimum), AS_OF) == Decimal("2000")


def test_only_the_unpaid_minimum_is_overdue_and_a_credit_owes_nothing() -> None:
    short = Installment(1, date(2026, 4, 10), Decimal("2000"), Decimal("30"), date(2026, 4, 9), Decimal("100"))
    credit = Installment(2, date(2026, 5, 10), Decimal("-50"), Decimal("0"), None, Decimal("0"))
    due = overdue(card(short, credit), AS_OF)
    assert (due.amount, due.count, due.oldest_due, due.minimum_only) == (Decimal("70"), 1, date(2026, 4, 10), True)
    assert statement_balance(card(short, credit), AS_OF) == Decimal("-50")


def test_screening_counts_a_paid_minimum_as_on_time_and_caps_the_paid_ratio(tmp_path: Path) -> None:
    accounts = write_csv(tmp_path / "a.csv", ACCOUNT_COLUMNS, [account("CARD", 1, "credit_card")])
    rows = [statement("CARD", 1, "2026-04-10", "2000.00", "2000.00", "2026-04-09", minimum="100.00"),
            statement("CARD", 2, "2026-05-10", "1500.00", "150.00", "2026-05-09", minimum="150.00")]
    frames = read_ledger(accounts, write_csv(tmp_path / "i.csv", COLUMNS, rows), today=READ_DAY)
    row = screen(*frames, as_of=AS_OF).row(0, named=True)
    assert (row["days_past_due"], row["on_time_rate"], row["paid_ratio"]) == (0, 1.0, 1.0)
    assert row["reasons"] == "nothing overdue; paid all of the 2 instalments due so far"
    assert row["reasons_zh"] == "无逾期；已到期2期，已还应还金额的全部"
