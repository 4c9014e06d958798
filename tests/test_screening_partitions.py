"""Screening in parts gives what screening the whole files gives: the same list, summary and errors."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS
from bot.screening import partitions
from bot.screening.priority import ScreeningInputError, run
from tests.csv_files import write_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_screening import generate  # noqa: E402

AS_OF = date(2026, 6, 1)  # pinned; the generated ledger's dates are relative to it
TODAY = date(2026, 6, 2)


def outputs(folder: Path) -> tuple[str, dict[str, object]]:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary.pop("generated_at")
    return (folder / "collection_list.csv").read_text(encoding="utf-8"), summary


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate(tmp_path_factory.mktemp("ledger"), 600, 11, TODAY)


@pytest.mark.parametrize("parts", [2, 7])
def test_parts_give_the_whole_run_s_list_and_summary(tmp_path: Path, ledger: tuple[Path, Path], parts: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "BAND_ROWS", 37)  # the list merged in many bands of priorities
    run(*ledger, tmp_path / "whole", AS_OF, quiet=True, parts=1)
    partitions.run(*ledger, tmp_path / "parts", tmp_path / "work", TODAY, AS_OF, parts, quiet=True)
    whole, in_parts = outputs(tmp_path / "whole"), outputs(tmp_path / "parts")
    assert whole == in_parts
    assert whole[1]["accounts"] == 600
    assert not (tmp_path / "work").exists()


def account(account_id: str, phone: str) -> dict[str, str]:
    return {"account_id": account_id, "name": "Test", "phone": phone, "language": "zh", "timezone": "Asia/Shanghai",
            "product": "consumer", "currency": "CNY", "id_last4": "1234", "birth_date": "1980-01-01",
            "address": "", "employer": "", "region": "SH"}


def instalment(account_id: str, no: int, amount: str = "100.00") -> dict[str, str]:
    return {"account_id": account_id, "installment_no": str(no), "due_date": "2026-05-01", "amount_due": amount,
            "amount_paid": "0", "paid_date": ""}


def errors_of(call: object) -> list[tuple[str, int, str, str]]:
    with pytest.raises(ScreeningInputError) as caught:
        call()  # type: ignore[operator]
    return [(e.file, e.line, e.column, e.message) for e in caught.value.errors]


def test_parts_find_every_error_a_whole_run_finds_even_across_parts(tmp_path: Path) -> None:
    people = [account(f"A{n}", f"+8613800{n:06d}") for n in range(40)]
    people.append(account("LATE", "+8613800000003"))  # A3's number, and most likely in another part
    people.append(account("A5", "+8613800999999"))  # an id used twice
    rows = [instalment(f"A{n}", 1) for n in range(40)] + [instalment("A7", 2, "12,5"), instalment("NOBODY", 1)]
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, people)
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS, rows)
    whole = errors_of(lambda: run(accounts, installments, tmp_path / "whole", AS_OF, quiet=True, parts=1))
    in_parts = errors_of(lambda: partitions.run(accounts, installments, tmp_path / "parts", tmp_path / "work",
                                                TODAY, AS_OF, 8, quiet=True))
    assert in_parts == whole
    assert {(e[0], e[2]) for e in whole} == {("accounts.csv", "phone"), ("accounts.csv", "account_id"),
                                             ("installments.csv", "amount_due"), ("installments.csv", "account_id")}
    assert not (tmp_path / "whole").exists() and not (tmp_path / "parts").exists()


def test_empty_parts_are_no_trouble(tmp_path: Path) -> None:
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS,
                         [account("A1", "+8613800000001"), account("A2", "+8613800000002")])
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS, [instalment("A1", 1)])
    run(accounts, installments, tmp_path / "whole", AS_OF, quiet=True, parts=1)
    partitions.run(accounts, installments, tmp_path / "parts", tmp_path / "work", TODAY, AS_OF, 16, quiet=True)
    assert outputs(tmp_path / "whole") == outputs(tmp_path / "parts")


def test_a_header_alone_screens_to_an_empty_list(tmp_path: Path) -> None:
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, [])
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS, [])
    run(accounts, installments, tmp_path / "whole", AS_OF, quiet=True, parts=1)
    partitions.run(accounts, installments, tmp_path / "parts", tmp_path / "work", TODAY, AS_OF, 3, quiet=True)
    assert outputs(tmp_path / "whole") == outputs(tmp_path / "parts")


def test_a_stray_quote_is_refused_as_a_whole_run_refuses_it_without_reading_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "PIECE_BYTES", 512)
    monkeypatch.setattr(partitions, "MAX_OPEN_QUOTE_BYTES", 4096)  # past it, the split cuts at a line end
    people = [account(f"A{n}", f"+8613800{n:06d}") for n in range(200)]
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, people)
    text = accounts.read_text(encoding="utf-8").replace(",SH\n", ',Room 3"B\n', 1)  # a quote nothing closes
    accounts.write_text(text, encoding="utf-8")
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS, [instalment("A1", 1)])
    whole = errors_of(lambda: run(accounts, installments, tmp_path / "whole", AS_OF, quiet=True, parts=1))
    in_parts = errors_of(lambda: partitions.run(accounts, installments, tmp_path / "parts", tmp_path / "work",
                                                TODAY, AS_OF, 3, quiet=True))
    for found in (whole, in_parts):
        assert [(f, line, column) for f, line, column, _ in found] == [("accounts.csv", 1, "-")]
        assert found[0][3].startswith("cannot be read as a UTF-8 CSV file")


def test_a_quoted_line_break_stays_in_its_field_across_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "PIECE_BYTES", 300)
    people = [account(f"A{n}", f"+8613800{n:06d}") for n in range(60)]
    for person in people[::7]:
        person["address"] = "Line one\nLine two"
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, people)
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS,
                             [instalment(f"A{n}", 1) for n in range(60)])
    run(accounts, installments, tmp_path / "whole", AS_OF, quiet=True, parts=1)
    partitions.run(accounts, installments, tmp_path / "parts", tmp_path / "work", TODAY, AS_OF, 3, quiet=True)
    assert outputs(tmp_path / "whole") == outputs(tmp_path / "parts")


def test_a_missing_column_is_refused_before_any_part_is_written(tmp_path: Path) -> None:
    accounts = write_csv(tmp_path / "accounts.csv", ACCOUNT_COLUMNS, [account("A1", "+8613800000001")])
    installments = write_csv(tmp_path / "installments.csv", INSTALLMENT_COLUMNS[:-1], [])
    found = errors_of(lambda: partitions.run(accounts, installments, tmp_path / "out", tmp_path / "work", TODAY,
                                             AS_OF, 3, quiet=True))
    expected = f"header lacks column(s); expected {','.join(INSTALLMENT_COLUMNS)}"
    assert found == [("installments.csv", 1, "paid_date", expected)]
