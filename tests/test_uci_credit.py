"""scripts/uci_credit.py: one client of the UCI data as statements, without downloading anything."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import uci_credit  # noqa: E402


def client(target: str, statuses: tuple[int, ...], bills: tuple[int, ...], pays: tuple[int, ...]) -> dict[str, str]:
    """statuses, bills and pays from September back to April, as the dataset numbers them."""
    row = {"ID": "7", "LIMIT_BAL": "50000", "AGE": "30", "target": target}
    for i, name in enumerate(("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")):
        row[name] = str(statuses[i])
    for i in range(6):
        row[f"BILL_AMT{i + 1}"], row[f"PAY_AMT{i + 1}"] = str(bills[i]), f"{pays[i]:.2E}"
    return row


def test_a_duly_paying_client_is_never_late_and_the_outcome_is_the_october_statement() -> None:
    found = uci_credit.statements(client("0", (0,) * 6, (20000,) * 6, (2000,) * 6))
    assert [s.due for s in found] == [date(2005, m, 15) for m in range(5, 11)]
    assert all(s.paid_on is not None and s.paid_on < s.due and s.paid >= s.minimum for s in found)
    assert found[-1].paid_on == date(2005, 10, 10) and found[-1].paid == found[-1].minimum == 2000


def test_months_behind_leave_the_latest_minimums_unpaid_and_a_default_leaves_october_unpaid() -> None:
    found = uci_credit.statements(client("1", (2, 1, 0, 0, 0, 0), (9000,) * 6, (0, 500, 1000, 1000, 1000, 1000)))
    june, july, august = found[-4], found[-3], found[-2]  # due 15 July, August, September
    assert (june.minimum, june.paid, june.paid_on) == (1000, 1000, date(2005, 7, 10))
    assert (july.paid, july.paid_on) == (august.paid, august.paid_on) == (0, None)  # 2 behind in September
    assert found[-1].paid == 0 and found[-1].paid_on is None


def test_a_month_behind_then_caught_up_is_paid_late() -> None:
    found = uci_credit.statements(client("0", (0, 1, 0, 0, 0, 0), (9000,) * 6, (3000,) * 6))
    july, august = found[-3], found[-2]
    assert (july.minimum, july.paid, july.paid_on) == (1000, 1000, date(2005, 9, 10))  # due 15 August
    assert (august.minimum, august.paid, august.paid_on) == (1000, 3000, date(2005, 9, 10))  # paid duly


def test_a_delay_on_nothing_billed_is_still_dated_late() -> None:
    found = uci_credit.statements(client("0", (1, 0, 0, 0, 0, 0), (0,) * 6, (0,) * 6))
    assert found[-2].paid_on == date(2005, 9, 28) and found[-2].due == date(2005, 9, 15)


def test_a_defaulter_with_no_balance_owed_the_floor() -> None:
    found = uci_credit.statements(client("1", (-2,) * 6, (0,) * 6, (0,) * 6))
    assert found[-1].balance == uci_credit.MINIMUM_FLOOR and found[-1].minimum == uci_credit.MINIMUM_FLOOR
    assert all(s.minimum == 0 for s in found[:-1])
