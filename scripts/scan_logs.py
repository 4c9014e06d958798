"""Fail if any log line a test run wrote holds a borrower's personal data.

Reads the names, phone numbers, addresses and birth dates of every borrower in the given ledgers
(the samples and the integration stack's), plus phrases borrowers say in the tests, and looks for
each in every ``*.log`` under the folder: the pytest run's own log (every level of the system's
loggers, through the processes' masking filter) and the stack's process logs (gateway, Rasa,
action server, stand-in, redis).

    python scripts/scan_logs.py results/test-logs --ledger samples/accounts.csv \
        --ledger results/test-logs/stack/accounts.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

# Things borrowers say in the tests that no log should repeat.
PHRASES = ("我现在欠你们多少钱啊", "talk to a real person", "我要投诉，你们太过分了", "户口簿地址与合同不同",
           "餐厅停业两个月", "户口本地址与申报不符", "我明天还一半")


def personal_data(ledgers: list[Path]) -> set[str]:
    """Every borrower's name, phone number (with and without +), address and birth date."""
    found = set(PHRASES)
    for ledger in ledgers:
        with ledger.open(encoding="utf-8", newline="") as file:
            for row in csv.DictReader(file):
                found |= {row["name"], row["phone"], row["phone"].lstrip("+"), row["birth_date"], row["address"]}
    return {value for value in found if len(value) >= 2}  # a Chinese name may have two characters


def hits(folder: Path, secrets: set[str]) -> Iterator[str]:
    for log in sorted(folder.rglob("*.log")):
        for number, line in enumerate(log.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for secret in secrets:
                if secret in line:
                    yield f"{log}:{number}: holds a borrower's detail ({len(secret)} characters)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--ledger", type=Path, action="append", required=True)
    args = parser.parse_args()
    logs = list(args.folder.rglob("*.log"))
    if not logs:
        print(f"no logs under {args.folder}: nothing was scanned", file=sys.stderr)
        return 1
    found = list(hits(args.folder, personal_data(args.ledger)))
    for hit in found[:50]:
        print(hit, file=sys.stderr)
    size = sum(log.stat().st_size for log in logs)
    print(f"scanned {len(logs)} log files ({size:,} bytes): {len(found)} lines with personal data")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
