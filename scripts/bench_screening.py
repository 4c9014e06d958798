"""Benchmark: screening a generated ledger against simply reading the same two CSV files with polars.

    .venv/bin/python scripts/bench_screening.py --accounts 1000000 --out docs/benchmarks-screening.md

Each measurement runs in its own process, so that its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_common import PYTHON, emit, machine_line  # noqa: E402

INSTALMENTS = 12
ZONES = ("Asia/Shanghai", "America/New_York", "Europe/London")


def generate(folder: Path, accounts: int, seed: int, today: date) -> tuple[Path, Path]:
    """accounts.csv and installments.csv with ``accounts`` x 12 rows of mixed payment behaviour."""
    rng = np.random.default_rng(seed)
    ids = pl.int_range(0, accounts, eager=True)
    pick = lambda values: pl.Series(np.array(values)[rng.integers(0, len(values), accounts)])  # noqa: E731
    people = pl.DataFrame({
        "account_id": "A" + ids.cast(pl.String).str.zfill(8),
        "name": pl.repeat("Borrower", accounts, eager=True),
        "phone": "+86139" + ids.cast(pl.String).str.zfill(8),
        "language": pick(["zh", "en"]),
        "timezone": pick(ZONES),
        "product": pick(["mortgage", "auto", "consumer", "credit_card"]),
        "currency": pick(["CNY", "USD"]),
        "id_last4": pick(["1234", "561X", "2208"]),
        "birth_date": pick(["1980-01-31", "1975-06-15", "1992-11-02"]),
        "address": pl.repeat("", accounts, eager=True),
        "employer": pl.repeat("", accounts, eager=True),
        "region": pick(["SH", "BJ", "NY", "CA"]),
    })
    accounts_csv = folder / "accounts.csv"
    people.write_csv(accounts_csv)
    rows = accounts * INSTALMENTS
    number = np.tile(np.arange(1, INSTALMENTS + 1), accounts)
    # The first instalment fell due 0-11 months before today, so each bucket is represented.
    start = np.repeat(rng.integers(0, 330, accounts), INSTALMENTS)
    due = np.datetime64(today) - start.astype("timedelta64[D]") + ((number - 1) * 30).astype("timedelta64[D]")
    behaviour = rng.choice(4, rows, p=[0.6, 0.15, 0.1, 0.15])  # on time, late, partial, unpaid
    paid_on = due + np.where(behaviour == 1, rng.integers(1, 40, rows), -rng.integers(0, 5, rows)).astype(
        "timedelta64[D]")
    paid = (paid_on < np.datetime64(today)) & (behaviour != 3)
    cents = np.where(behaviour == 2, 40000, 100000)
    plan = pl.DataFrame({
        "account_id": people.get_column("account_id").gather(np.repeat(np.arange(accounts), INSTALMENTS)),
        "installment_no": number,
        "due_date": pl.Series(due).cast(pl.Date).cast(pl.String),
        "amount_due": pl.repeat("1000.00", rows, eager=True),
        "amount_paid": pl.Series(np.where(paid, cents, 0)).cast(pl.Float64) / 100,
        "paid_date": pl.Series(np.where(paid, paid_on, np.datetime64("NaT"))).cast(pl.Date).cast(pl.String),
    }).with_columns(pl.col("amount_paid").round(2).cast(pl.String), pl.col("paid_date").fill_null(""))
    installments_csv = folder / "installments.csv"
    plan.write_csv(installments_csv)
    return accounts_csv, installments_csv


def measure(kind: str, folder: Path) -> dict[str, float]:
    """Run one measurement in this process; wall seconds and peak RSS in MB."""
    started = time.perf_counter()
    if kind == "read":
        for name in ("accounts.csv", "installments.csv"):
            pl.read_csv(folder / name, infer_schema=False)
    else:
        screen(folder, started)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def screen(folder: Path, started: float) -> None:
    from bot.screening import priority as screening

    strategies = screening.load_strategies()
    print(f"imports took {time.perf_counter() - started:.2f} s", file=sys.stderr)
    screening.run(folder / "accounts.csv", folder / "installments.csv", folder / "out", strategies=strategies,
                  quiet=True)


def in_subprocess(kind: str, folder: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", kind, "--folder", str(folder)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def markdown(args: argparse.Namespace, read: dict[str, float], whole: dict[str, float], sizes: str) -> str:
    command = f".venv/bin/python scripts/bench_screening.py --accounts {args.accounts} --seed {args.seed}"
    if args.out:
        command += f" --out {args.out}"
    return "\n".join([
        "# Benchmarks: screening",
        "",
        machine_line(PYTHON, f"polars {pl.__version__}") + ".",
        f"Generated ledger: {args.accounts:,} accounts x {INSTALMENTS} instalments ({sizes}); no Redis facts.",
        "(a) reads both files with polars alone (all columns as text); (b) is the whole `bot.screening.priority.run`: "
        "read, check every row, screen, and write the collection list, summary, report and charts. "
        "Each runs in its own process, so each peak RSS is its own.",
        "",
        f"Command: `{command}`",
        "",
        "| measurement | wall s | peak RSS MB |",
        "|---|---|---|",
        f"| (a) polars read_csv of both files | {read['seconds']:.2f} | {read['peak_rss_mb']:,.0f} |",
        f"| (b) whole screening | {whole['seconds']:.2f} | {whole['peak_rss_mb']:,.0f} |",
        f"| ratio (b) / (a) | {whole['seconds'] / read['seconds']:.1f}x | "
        f"{whole['peak_rss_mb'] / read['peak_rss_mb']:.1f}x |",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the results as markdown here")
    parser.add_argument("--measure", choices=("read", "screen"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        if args.folder is None:
            parser.error("--measure needs --folder")
        print(json.dumps(measure(args.measure, args.folder)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-screening-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        generate(folder, args.accounts, args.seed, date.today() - timedelta(days=1))
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in sorted(folder.glob("*.csv")))
        print(f"generated in {time.perf_counter() - started:.1f} s: {sizes}", file=sys.stderr)
        read = in_subprocess("read", folder)
        whole = in_subprocess("screen", folder)
    emit(markdown(args, read, whole, sizes), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
