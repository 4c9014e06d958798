"""Benchmark: screening generated ledgers (1M and 10M accounts) as one frame, in parts, learned, and on workers.

    .venv/bin/python scripts/bench_screening.py --accounts 1000000 --large 10000000 --workers 2 \
        --out docs/benchmarks-screening.md

Each measurement runs in its own process, so that its peak memory (ru_maxrss) is its own; the workers' peaks
are read from /proc before they stop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
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

from bot.screening.partitions import PART_BYTES  # noqa: E402
from scripts.bench_common import PYTHON, emit, machine_line  # noqa: E402

INSTALMENTS = 12
TODAY = date.today() - timedelta(days=1)
AS_OF = TODAY + timedelta(days=1)
TRAIN_AS_OF = TODAY - timedelta(days=90)
ZONES = ("Asia/Shanghai", "America/New_York", "Europe/London")


CHUNK = 500_000  # accounts generated and written at a time, so that 10M accounts fit in memory


def generate(folder: Path, accounts: int, seed: int, today: date) -> tuple[Path, Path]:
    """accounts.csv and installments.csv with ``accounts`` x 12 rows of mixed payment behaviour."""
    rng = np.random.default_rng(seed)
    accounts_csv, installments_csv = folder / "accounts.csv", folder / "installments.csv"
    with accounts_csv.open("wb") as people_file, installments_csv.open("wb") as plan_file:
        for first in range(0, accounts, CHUNK):
            people, plan = _chunk(rng, first, min(CHUNK, accounts - first), today)
            people.write_csv(people_file, include_header=first == 0)
            plan.write_csv(plan_file, include_header=first == 0)
    return accounts_csv, installments_csv


def _chunk(rng: np.random.Generator, first: int, accounts: int, today: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = pl.int_range(first, first + accounts, eager=True)
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
    rows = accounts * INSTALMENTS
    number = np.tile(np.arange(1, INSTALMENTS + 1), accounts)
    # The first instalment fell due 0-11 months before today, so each bucket is represented.
    start = np.repeat(rng.integers(0, 330, accounts), INSTALMENTS)
    due = np.datetime64(today) - start.astype("timedelta64[D]") + ((number - 1) * 30).astype("timedelta64[D]")
    # Each account has a habit (mostly on time, or often late, part-paying or not paying), so that what it
    # did before a day says something of what it does after: the learned priority has something to learn.
    habit = np.repeat(rng.choice(3, accounts, p=[0.7, 0.2, 0.1]), INSTALMENTS)
    odds = np.array([[0.9, 0.05, 0.03, 0.02], [0.35, 0.35, 0.15, 0.15], [0.15, 0.15, 0.2, 0.5]])
    behaviour = (rng.random(rows)[:, None] > np.cumsum(odds[habit], axis=1)).sum(axis=1)  # on time/late/part/unpaid
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
    return people, plan


def measure(kind: str, folder: Path, redis_url: str | None = None) -> dict[str, float]:
    """Run one measurement in this process; wall seconds and peak RSS in MB."""
    started = time.perf_counter()
    if kind == "read":
        for name in ("accounts.csv", "installments.csv"):
            pl.read_csv(folder / name, infer_schema=False)
    elif kind == "train":
        from bot.screening.training import train_from_ledger

        saved = train_from_ledger(folder / "accounts.csv", folder / "installments.csv", TRAIN_AS_OF, 30,
                                  folder / "model.json")
        print(saved.summary, file=sys.stderr)
    elif kind == "workers":
        asyncio.run(_on_workers(folder, redis_url or ""))
    else:
        screen(folder, kind)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def screen(folder: Path, kind: str) -> None:
    """``whole``: the one-frame path (parts=1); ``parts``: by the files' size; ``learned``: parts, the model."""
    from bot.screening import model, priority

    out = folder / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    learned = model.load(folder / "model.json") if kind == "learned" else None
    priority.run(folder / "accounts.csv", folder / "installments.csv", out, AS_OF, quiet=True, model=learned,
                 parts=1 if kind == "whole" else None)


async def _on_workers(folder: Path, redis_url: str) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from bot.campaigns.screening_jobs import PartJob, run_on_workers

    out = folder / "out-workers"
    shutil.rmtree(out, ignore_errors=True)
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        await run_on_workers(queue, folder / "accounts.csv", folder / "installments.csv", out, folder / "work",
                             PartJob(TODAY.isoformat(), AS_OF.isoformat()))
    finally:
        await queue.close()


def in_subprocess(kind: str, folder: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", kind, "--folder", str(folder)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def on_two_workers(folder: Path, workers: int) -> dict[str, float]:
    """The same screening as parts on ``workers`` real campaign workers; their peaks read before they stop."""
    from cryptography.fernet import Fernet

    from tests.conftest import make_env, redis_server

    with redis_server(folder) as redis_url:
        env = {"PATH": os.environ.get("PATH", ""), **make_env(redis_url, DATA_KEYS=Fernet.generate_key().decode())}
        log = (folder / "workers.log").open("ab")
        started = [subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT) for _ in range(workers)]
        try:
            figures = in_subprocess("workers", folder, {**os.environ, "BENCH_REDIS_URL": redis_url})
            figures["worker_peak_rss_mb"] = max(_peak_mb(w.pid) for w in started)
        finally:
            for worker in started:
                worker.send_signal(signal.SIGTERM)
            for worker in started:
                worker.wait(30)
            log.close()
    return figures


def _peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def row(name: str, figures: dict[str, float], accounts: int) -> str:
    per_million = figures["seconds"] / (accounts / 1_000_000)
    return f"| {name} | {accounts:,} | {figures['seconds']:.1f} | {per_million:.1f} | {figures['peak_rss_mb']:,.0f} |"


def markdown(args: argparse.Namespace, rows: list[str], sizes: list[str], notes: list[str]) -> str:
    command = f".venv/bin/python scripts/bench_screening.py --accounts {args.accounts} --large {args.large} " \
              f"--workers {args.workers} --seed {args.seed}"
    if args.out:
        command += f" --out {args.out}"
    return "\n".join([
        "# Benchmarks: screening",
        "",
        machine_line(PYTHON, f"polars {pl.__version__}") + ".",
        f"Generated ledgers of {INSTALMENTS} instalments an account ({'; '.join(sizes)}); no Redis facts. "
        "Each measurement runs in its own process, so each peak RSS is its own: (a) reads both files with polars "
        "alone (all columns as text); the others are the whole `bot.screening.priority.run` (read, check every "
        "row, screen, write the collection list, summary, report and charts): (b) as one frame (`parts=1`, the "
        f"way before parts), (c) in parts by the files' size (`bot.screening.partitions`, "
        f"{PART_BYTES / 1e6:,.0f} MB of instalments a part), (d) `screen train` on the ledger as of 90 days ago "
        "(30-day horizon), (e) parts ranked by that model with its reasons, (f) the parts as jobs on real "
        "campaign workers (`python -m bot screen --workers`): split and merge in the measured process, the parts "
        "in the workers.",
        "",
        f"Command: `{command}`",
        "",
        "| measurement | accounts | wall s | s per million | peak RSS MB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000, help="the streaming run's size (0: skip it)")
    parser.add_argument("--workers", type=int, default=2, help="campaign workers for (f) (0: skip it)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the results as markdown here")
    parser.add_argument("--measure", choices=("read", "whole", "parts", "train", "learned", "workers"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        if args.folder is None:
            parser.error("--measure needs --folder")
        print(json.dumps(measure(args.measure, args.folder, os.environ.get("BENCH_REDIS_URL"))))
        return 0
    rows, sizes, notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-screening-") as tmp:
        small = _generated(Path(tmp) / "small", args.accounts, args.seed, sizes)
        for name, kind in (("(a) polars read_csv of both files", "read"), ("(b) whole screening, one frame", "whole"),
                           ("(c) whole screening, in parts", "parts"), ("(d) screen train", "train"),
                           ("(e) learned priority, in parts", "learned")):
            figures = in_subprocess(kind, small)
            rows.append(row(name, figures, args.accounts))
            print(rows[-1], file=sys.stderr)
        if args.workers:
            _on_workers_row(small, args.accounts, args.workers, rows, notes)
        shutil.rmtree(small)
        if args.large:
            large = _generated(Path(tmp) / "large", args.large, args.seed, sizes)
            figures = in_subprocess("parts", large)
            rows.append(row("(c) whole screening, in parts", figures, args.large))
            print(rows[-1], file=sys.stderr)
            if args.workers:
                _on_workers_row(large, args.large, args.workers, rows, notes)
    emit(markdown(args, rows, sizes, notes), args.out)
    return 0


def _on_workers_row(folder: Path, accounts: int, workers: int, rows: list[str], notes: list[str]) -> None:
    figures = on_two_workers(folder, workers)
    rows.append(row(f"(f) in parts on {workers} workers", figures, accounts))
    notes.append(f"(f) at {accounts:,}: the largest worker's peak RSS was {figures['worker_peak_rss_mb']:,.0f} MB.")


def _generated(folder: Path, accounts: int, seed: int, sizes: list[str]) -> Path:
    folder.mkdir(parents=True)
    started = time.perf_counter()
    generate(folder, accounts, seed, TODAY)
    files = ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in sorted(folder.glob("*.csv")))
    sizes.append(f"{accounts:,} accounts: {files}")
    print(f"generated {accounts:,} accounts in {time.perf_counter() - started:.1f} s: {files}", file=sys.stderr)
    return folder


if __name__ == "__main__":
    sys.exit(main())
