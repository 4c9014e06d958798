"""Writing test ledgers: rows as a CSV file with a header, as a bank's export would be."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
