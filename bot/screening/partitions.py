"""Screening a ledger too big for memory, or spread over workers: split by account, screen each part, merge.

``split`` streams both CSV files once into N Parquet parts (accounts hashed on their id, so an account and
its instalments land in the same part; each row keeps its line number for the errors), and checks what a
part cannot see alone (a phone number used twice). ``screen_part`` checks and screens one part, the same
code as a whole-file run, and writes its rows in priority order. ``merge`` streams the parts' rows into one
list, in order, with only the summary's few columns in memory. A part is one arq job on the campaign
workers (``bot.campaigns.screening_jobs.screen_partition``); on one machine, ``run`` screens the parts in turn.

Memory: one part at a time, plus the merge's streams. A part's size is set by PART_BYTES of instalments.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS, OPTIONAL_INSTALLMENT_COLUMNS
from bot.screening import priority
from bot.screening.model import PriorityModel

PART_BYTES = 100_000_000  # of installments.csv per part: about 200,000 accounts of 12 instalments
HASH_SEED = 20_26
ROW_GROUP_ROWS = 10_000  # of a part's screened rows
BAND_ROWS = 1_000_000  # rows of the list sorted in memory at a time while merging
LIST_ORDER: dict[str, Any] = {"by": ["priority", "account_id"], "descending": [True, False]}
MAX_OPEN_QUOTE_BYTES = 16_000_000  # no quoted field is longer: past it, a quote was text, not an opening
PIECE_BYTES = 64_000_000  # of a CSV file read, parsed and cut into parts at a time while splitting


@dataclass(frozen=True)
class Split:
    """Where the parts of one run are, and what they came from (JSON-able, for a job's arguments)."""

    folder: str
    parts: int
    accounts_name: str
    installments_name: str

    def path(self, kind: str, index: int) -> Path:
        """The folder of part ``index``'s files of ``kind`` (one per batch of the file that had rows for it)."""
        return Path(self.folder) / kind / f"part={index}"


def parts_for(installments_csv: Path) -> int:
    return max(1, math.ceil(installments_csv.stat().st_size / PART_BYTES))


def split(accounts_csv: Path, installments_csv: Path, folder: Path, parts: int) -> Split:
    """Stream both files into ``parts`` Parquet parts under ``folder`` (all columns as stripped text).

    Raises:
        ScreeningInputError: a file that cannot be read, or lacks a column, as a whole-file run says it.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700)  # the parts hold the ledger's text, names and numbers included, until the end
    sources = (("accounts", accounts_csv, ACCOUNT_COLUMNS, priority.SCREENING_ACCOUNT_COLUMNS),
               ("installments", installments_csv, INSTALLMENT_COLUMNS, OPTIONAL_INSTALLMENT_COLUMNS))
    for kind, path, columns, optional in sources:
        part = (pl.col("account_id").hash(HASH_SEED) % parts).alias("part")
        try:
            _split_file(path, columns, optional, part, folder / kind)
        except (pl.exceptions.PolarsError, OSError) as exc:
            priority.raise_unreadable(path, exc)
    plan = Split(str(folder), parts, accounts_csv.name, installments_csv.name)
    _repeated_phones(plan).write_parquet(folder / "errors-whole-file.parquet")
    return plan


def _split_file(path: Path, columns: tuple[str, ...], optional: tuple[str, ...], part: pl.Expr, folder: Path) -> None:
    line = 2
    for number, (piece, rows) in enumerate(_pieces(path)):
        text = priority.scan_text(path, columns, optional, source=piece, first_line=line).with_columns(part)
        _write_parts(text.collect(), folder, number)
        line += rows


def _pieces(path: Path, size: int = PIECE_BYTES) -> Iterator[tuple[bytes, int]]:
    """The file as pieces of about ``size`` bytes, each the header and whole rows, with its number of lines.

    Read as bytes, not mapped: polars maps a file it scans, and every page read stays in the process's
    memory (6 GB of a 5 GB file). A piece ends at a line end outside quotes, so a quoted field with a line
    break stays whole. A file with lone CR line ends (Excel's "CSV (Macintosh)") is one piece.
    """
    whole = priority.with_newlines(path)
    if isinstance(whole, bytes):
        header, _, body = whole.partition(b"\n")
        yield header + b"\n" + body, body.count(b"\n")
        return
    with path.open("rb") as handle:
        header, rest, pieces = handle.readline(), b"", 0
        while block := handle.read(size):
            rest += block
            # A quote inside an unquoted field (an address like 3"B) is text to polars but looks like an open
            # quote here: past MAX_OPEN_QUOTE_BYTES, cut at the last line end anyway (polars says if it was not).
            cut = _row_end(rest) or (rest.rfind(b"\n") + 1 if len(rest) > MAX_OPEN_QUOTE_BYTES else 0)
            if cut:
                yield header + rest[:cut], rest.count(b"\n", 0, cut)
                rest, pieces = rest[cut:], pieces + 1
        if rest.strip() or not pieces:  # a header alone is still read, and checked
            yield header + rest, rest.count(b"\n") + (bool(rest) and not rest.endswith(b"\n"))


def _row_end(data: bytes) -> int:
    """Just past the last line end of ``data`` that is outside quotes; 0 when there is none.

    Quotes are counted once, then taken off line by line going back: linear, however many lines are in quotes.
    """
    cut = data.rfind(b"\n")
    quotes = data.count(b'"', 0, max(cut, 0))
    while cut >= 0 and quotes % 2:
        before = data.rfind(b"\n", 0, cut)
        quotes -= data.count(b'"', max(before, 0), cut)
        cut = before
    return cut + 1


def _write_parts(text: pl.DataFrame, folder: Path, number: int) -> None:
    """A piece's rows cut by part, as one file per part and piece."""
    for (index,), rows in text.partition_by("part", as_dict=True, include_key=False).items():
        rows.write_parquet(_mkdir(folder / f"part={index}" / f"{number:06d}.parquet"))


def _repeated_phones(plan: Split) -> pl.DataFrame:
    """Phones used on an earlier line of the whole accounts file (a part sees only its own lines)."""
    parts = Path(plan.folder) / "accounts"
    if not any(parts.glob("*/*.parquet")):  # a file of a header alone
        return pl.DataFrame(schema={"file": pl.String, "line": pl.Int64, "column": pl.String, "reason": pl.String})
    phones = pl.scan_parquet(parts / "*" / "*.parquet").select("line", "phone")
    repeated = phones.sort("line").filter(~pl.col("phone").is_first_distinct() & (pl.col("phone") != ""))
    return repeated.select(pl.lit(plan.accounts_name).alias("file"), pl.col("line").cast(pl.Int64),
                           pl.lit("phone").alias("column"), pl.lit(priority.PHONE_REPEATED).alias("reason")
                           ).collect()


def _part(plan: Split, kind: str, index: int, columns: tuple[str, ...]) -> pl.DataFrame:
    path = plan.path(kind, index)
    if not path.is_dir():  # no account hashed here
        return pl.DataFrame(schema={"line": pl.Int64, **{c: pl.String for c in columns}})
    return pl.read_parquet(path / "*.parquet").with_columns(pl.col("line").cast(pl.Int64)).sort("line")


def account_ids(plan: Split, index: int) -> list[str]:
    """The ids of part ``index``'s accounts (to read their records before screening it)."""
    accounts = _part(plan, "accounts", index, (*ACCOUNT_COLUMNS, *priority.SCREENING_ACCOUNT_COLUMNS))
    return accounts.get_column("account_id").to_list()


def screen_part(plan: Split, index: int, today: date, as_of: date | None = None,
                facts: Callable[[list[str]], pl.DataFrame] | None = None,
                model: PriorityModel | None = None, strategies: priority.Strategies | None = None,
                now: datetime | None = None) -> int:
    """Check and screen part ``index``; write its errors, or its rows in priority order. Returns its accounts."""
    errors, typed = checked_part(plan, index, today)
    out = Path(plan.folder)
    if typed is None:
        errors.write_parquet(_mkdir(out / "errors" / f"{index}.parquet"))
        return 0
    typed_accounts, typed_installments = typed
    found = facts(typed_accounts.get_column("account_id").to_list()) if facts else None
    result = priority.screen(typed_accounts, typed_installments, as_of, found, strategies, now=now, model=model)
    # Small row groups, in priority order: the merge reads a band of priorities without reading the rest.
    result.write_parquet(_mkdir(out / "results" / f"{index}.parquet"), row_group_size=ROW_GROUP_ROWS)
    return result.height


def checked_part(plan: Split, index: int, today: date
                 ) -> tuple[pl.DataFrame, tuple[pl.DataFrame, pl.DataFrame] | None]:
    """Part ``index``'s errors, and its frames typed for screening when it has none."""
    accounts = _part(plan, "accounts", index, (*ACCOUNT_COLUMNS, *priority.SCREENING_ACCOUNT_COLUMNS))
    installments = _part(plan, "installments", index, (*INSTALLMENT_COLUMNS, *OPTIONAL_INSTALLMENT_COLUMNS))
    errors = priority.check_ledger(accounts, installments, (plan.accounts_name, plan.installments_name), today,
                                   phones_unique=False)
    return errors, None if errors.height else priority.typed_ledger(accounts, installments)


def whole_file_errors(plan: Split) -> pl.DataFrame:
    """What ``split`` found that no part can see (phones used twice)."""
    return pl.read_parquet(Path(plan.folder) / "errors-whole-file.parquet")


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def merge(plan: Split, out_dir: Path, previous: Path | None = None, card: dict[str, Any] | None = None
          ) -> priority.Outputs:
    """Write the run's outputs from every part's rows, merged in order.

    Raises:
        ScreeningInputError: any part's errors and the whole-file ones, first lines first; nothing is written.
    """
    folder = Path(plan.folder)
    errors = [pl.read_parquet(p) for p in (folder / "errors").glob("*.parquet")] if (folder / "errors").is_dir() else []
    errors.append(whole_file_errors(plan))
    every = pl.concat(errors)
    if every.height:
        priority.raise_errors(every)
    results = sorted((folder / "results").glob("*.parquet"))  # every part writes one, however few its rows
    rows = pl.scan_parquet(results)  # in no order: what the summary counts does not need one
    top = pl.concat([pl.scan_parquet(p).head(priority.TOP_ACCOUNTS_IN_REPORT) for p in results]).sort(
        **LIST_ORDER).head(priority.TOP_ACCOUNTS_IN_REPORT).select(priority.TOP_COLUMNS).collect()
    return priority.write_outputs(rows, out_dir, previous, card=card, top=top,
                                  write_list=lambda path: _write_in_order(results, path))


def _write_in_order(results: list[Path], path: Path) -> None:
    """The parts' rows as one list in order, a band at a time (each band sorted in memory).

    A priority has 1,001 values (0 to 100 in tenths): a band is a run of whole values of about BAND_ROWS rows,
    or, for one value held by more accounts, a range of their account ids. Each band is read from every part
    (row groups outside it skipped), sorted and appended. Merging all parts at once (polars' merge_sorted)
    held them all: 16 GB at 10M accounts.
    """
    rows = pl.scan_parquet(results)
    counts = rows.group_by("priority").len().sort("priority", descending=True).collect()
    with path.open("wb") as handle:
        for number, band in enumerate(_bands(rows, counts)):
            chosen = priority.spreadsheet_safe(rows.filter(band).select(priority.LIST_COLUMNS)).sort(**LIST_ORDER)
            chosen.collect().write_csv(handle, include_header=number == 0, float_precision=2)


def _bands(rows: pl.LazyFrame, counts: pl.DataFrame) -> Iterator[pl.Expr]:
    """Filters of the bands, in the list's order (``counts``: rows per priority, highest first)."""
    values: list[float] = []
    gathered = 0
    for value, count in counts.iter_rows():
        if count > BAND_ROWS:
            if values:
                yield pl.col("priority").is_between(values[-1], values[0])
                values, gathered = [], 0
            yield from _id_ranges(rows, value)
            continue
        values.append(value)
        gathered += count
        if gathered >= BAND_ROWS:
            yield pl.col("priority").is_between(values[-1], values[0])
            values, gathered = [], 0
    if values or not len(counts):  # and a first band for an empty list, for its header
        yield pl.col("priority").is_between(values[-1], values[0]) if values else pl.lit(False)


def _id_ranges(rows: pl.LazyFrame, value: float) -> Iterator[pl.Expr]:
    """One priority's accounts in ranges of BAND_ROWS account ids."""
    ids = rows.filter(pl.col("priority") == value).select(pl.col("account_id").sort()).collect().to_series()
    for first in range(0, len(ids), BAND_ROWS):
        last = min(first + BAND_ROWS, len(ids)) - 1
        yield (pl.col("priority") == value) & pl.col("account_id").is_between(pl.lit(ids[first]), pl.lit(ids[last]))


def run(accounts_csv: Path, installments_csv: Path, out_dir: Path, work: Path, today: date,
        as_of: date | None = None, parts: int | None = None, model: PriorityModel | None = None,
        previous: Path | None = None, quiet: bool = False, load: Callable[[list[str]], pl.DataFrame] | None = None,
        strategies: priority.Strategies | None = None) -> priority.Outputs:
    """Split, screen every part in turn with a progress bar, and merge; the parts are removed after.

    Args:
        work: a folder for the parts (emptied first, removed at the end).
        today: the day the files are checked on (no payment after it).
    """
    try:
        plan = split(accounts_csv, installments_csv, work, parts or parts_for(installments_csv))
        strategies = strategies or priority.load_strategies()
        now = datetime.now(timezone.utc)  # one moment: a long run's parts all take "today" from it
        for index in tqdm(range(plan.parts), desc="screening", unit="part", disable=quiet):
            screen_part(plan, index, today, as_of, load, model, strategies, now)
        return merge(plan, out_dir, previous, card=model.card if model else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def as_job(plan: Split) -> dict[str, Any]:
    """The plan as an arq job's argument (JSON)."""
    return asdict(plan)
