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


def test_months_behind_carry_arrears_and_a_default_leaves_october_unpaid() -> None:
    found = uci_credit.statements(client("1", (2, 1, 0, 0, 0, 0), (9000,) * 6, (0, 500, 1000, 1000, 1000, 1000)))
    august = found[-2]  # due 15 September, whose status is 2 months behind
    assert august.minimum == 3000 and august.paid == 0 and august.paid_on is None
    july = found[-3]  # status 1 in August: paid late, short of a minimum carrying one month of arrears
    assert (july.minimum, july.paid, july.paid_on) == (2000, 500, date(2005, 8, 28))
    assert found[-1].paid == 0 and found[-1].paid_on is None


def test_a_defaulter_with_no_balance_owed_the_floor() -> None:
    found = uci_credit.statements(client("1", (-2,) * 6, (0,) * 6, (0,) * 6))
    assert found[-1].balance == uci_credit.MINIMUM_FLOOR and found[-1].minimum == uci_credit.MINIMUM_FLOOR
    assert all(s.minimum == 0 for s in found[:-1])
