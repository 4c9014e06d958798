"""Screening on hand-made ledgers with known answers, the rules file, bad input, outputs and Redis facts."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contact.policy import Attempt
from bot.core import keys
from bot.domain import plans
from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS, Account, Installment, overdue
from bot.field import visits as field_visits
from bot.screening.priority import (
    BUCKETS,
    LIST_COLUMNS,
    VISIT_OUTCOMES,
    ScreeningInputError,
    StrategyError,
    bucket_expr,
    latest_run,
    load_facts,
    load_strategies,
    read_ledger,
    run,
    screen,
    write_outputs,
)

AS_OF = date(2026, 6, 1)
READ_DAY = date(2026, 12, 31)  # the day the files are checked on: every paid_date is in its past
STRATEGIES = load_strategies()


def account_row(account_id: str, n: int, zone: str = "Asia/Shanghai", currency: str = "CNY") -> dict[str, str]:
    return {"account_id": account_id, "name": "Test", "phone": f"+861380000{n:04d}", "language": "zh",
            "timezone": zone, "product": "consumer", "currency": currency, "id_last4": "1234",
            "birth_date": "1980-01-01", "address": "", "employer": "", "region": "SH"}


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def instalment(account_id: str, no: int, due: date, amount_due: str, paid: str = "0.00",
               paid_on: date | None = None) -> dict[str, str]:
    return {"account_id": account_id, "installment_no": str(no), "due_date": due.isoformat(),
            "amount_due": amount_due, "amount_paid": paid, "paid_date": paid_on.isoformat() if paid_on else ""}


def ledger_files(folder: Path, accounts: list[dict[str, str]], rows: list[dict[str, str]]) -> tuple[Path, Path]:
    return (write_csv(folder / "accounts.csv", ACCOUNT_COLUMNS, accounts),
            write_csv(folder / "installments.csv", INSTALLMENT_COLUMNS, rows))


def screened(tmp_path: Path, accounts: list[dict[str, str]], rows: list[dict[str, str]],
             facts: pl.DataFrame | None = None, as_of: date | None = AS_OF,
             now: datetime | None = None) -> dict[str, dict[str, Any]]:
    frames = read_ledger(*ledger_files(tmp_path, accounts, rows), today=READ_DAY)
    result = screen(*frames, as_of=as_of, facts=facts, strategies=STRATEGIES, now=now)
    return {r["account_id"]: r for r in result.to_dicts()}


def folder(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def unpaid_days_ago(account_id: str, days: int) -> dict[str, str]:
    return instalment(account_id, 1, AS_OF - timedelta(days=days), "100.00")


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "expected_dpd", "expected_bucket"), [
    (0, 0, "current"), (1, 1, "1-30"), (30, 30, "1-30"), (31, 31, "31-60"), (60, 60, "31-60"),
    (61, 61, "61-90"), (90, 90, "61-90"), (91, 91, "90+"),
])
def test_bucket_edges(tmp_path: Path, days: int, expected_dpd: int, expected_bucket: str) -> None:
    row = screened(tmp_path, [account_row("A", 1)], [unpaid_days_ago("A", days)])["A"]
    assert (row["days_past_due"], row["bucket"]) == (expected_dpd, expected_bucket)


def test_every_metric_of_a_mixed_account(tmp_path: Path) -> None:
    rows = [
        instalment("A", 1, date(2026, 1, 10), "100.00", "100.00", date(2026, 1, 9)),   # paid early
        instalment("A", 2, date(2026, 2, 10), "100.00", "100.00", date(2026, 2, 15)),  # paid late
        instalment("A", 3, date(2026, 3, 10), "100.00", "40.00", date(2026, 3, 10)),   # partial
        instalment("A", 4, date(2026, 4, 10), "100.00"),                                # unpaid
        instalment("A", 5, date(2026, 5, 10), "100.00", "100.00", date(2026, 5, 10)),  # paid on the day
        instalment("A", 6, date(2026, 6, 10), "100.00"),                                # not due yet
    ]
    row = screened(tmp_path, [account_row("A", 1)], rows)["A"]
    assert row["days_past_due"] == (AS_OF - date(2026, 3, 10)).days == 83
    assert row["bucket"] == "61-90"
    assert row["overdue_amount"] == 160.0
    assert row["on_time_rate"] == pytest.approx(2 / 5)
    assert row["paid_ratio"] == pytest.approx(340 / 500)
    assert (row["partial_payments"], row["longest_streak"], row["current_streak"]) == (1, 3, 0)
    assert row["reasons"] == "83 days overdue; 160.00 CNY unpaid; paid 68% of the 5 instalments due so far"
    assert row["strategy"] == "hardship_offer"


def test_streaks_follow_instalment_order_not_file_order(tmp_path: Path) -> None:
    late = [2, 1, 6, 5, 4]  # unpaid instalments, written out of order; 3 was paid on time
    rows = [instalment("A", n, date(2026, n, 1), "100.00") for n in late]
    rows.append(instalment("A", 3, date(2026, 3, 1), "100.00", "100.00", date(2026, 3, 1)))
    rows += [instalment("B", 1, date(2026, 1, 1), "100.00"),
             instalment("B", 2, date(2026, 2, 1), "100.00", "100.00", date(2026, 2, 1)),
             instalment("B", 3, date(2026, 3, 1), "100.00")]
    result = screened(tmp_path, [account_row("A", 1), account_row("B", 2)], rows, as_of=date(2026, 6, 2))
    assert (result["A"]["longest_streak"], result["A"]["current_streak"]) == (3, 3)
    assert (result["B"]["longest_streak"], result["B"]["current_streak"]) == (1, 1)


def test_nothing_due_yet_no_instalments_and_all_paid(tmp_path: Path) -> None:
    rows = [instalment("LATER", 1, AS_OF + timedelta(days=5), "100.00"),
            instalment("PAID", 1, date(2026, 4, 1), "100.00", "100.00", date(2026, 3, 30)),
            instalment("PAID", 2, date(2026, 5, 1), "100.00", "100.00", date(2026, 5, 1))]
    accounts = [account_row("LATER", 1), account_row("NONE", 2), account_row("PAID", 3)]
    result = screened(tmp_path, accounts, rows)
    for account_id in ("LATER", "NONE", "PAID"):
        row = result[account_id]
        assert (row["days_past_due"], row["bucket"], row["overdue_amount"]) == (0, "current", 0.0)
        assert (row["on_time_rate"], row["paid_ratio"], row["longest_streak"]) == (1.0, 1.0, 0)
        assert row["strategy"] == "gentle_sms"
    assert result["PAID"]["reasons"] == "nothing overdue; paid all of the 2 instalments due so far"
    assert result["NONE"]["reasons"] == "nothing overdue"


def test_as_of_defaults_to_today_in_each_borrowers_zone(tmp_path: Path) -> None:
    # 02:00 UTC on 1 June is 10:00 on 1 June in Shanghai but 22:00 on 31 May in New York.
    now = datetime(2026, 6, 1, 2, 0, tzinfo=timezone.utc)
    accounts = [account_row("SH", 1, "Asia/Shanghai"), account_row("NY", 2, "America/New_York", "USD")]
    rows = [instalment("SH", 1, date(2026, 5, 31), "100.00"), instalment("NY", 1, date(2026, 5, 31), "100.00")]
    result = screened(tmp_path, accounts, rows, as_of=None, now=now)
    assert (result["SH"]["as_of"], result["SH"]["days_past_due"]) == (date(2026, 6, 1), 1)
    assert (result["NY"]["as_of"], result["NY"]["days_past_due"]) == (date(2026, 5, 31), 0)


def test_buckets_agree_with_plans_bucket_for_0_to_200() -> None:
    days = list(range(201))
    got = pl.DataFrame({"d": days}).select(bucket_expr(pl.col("d"))).to_series().to_list()
    assert got == [plans.bucket(d) for d in days]


def test_the_bucket_names_are_current_and_those_of_plans() -> None:
    assert ("current", *plans.BUCKETS) == BUCKETS


def test_the_visit_outcome_codes_are_those_of_field_visits() -> None:
    assert VISIT_OUTCOMES == field_visits.OUTCOMES


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-60, 200), st.integers(0, 3), st.integers(0, 100)), min_size=1, max_size=8))
def test_days_past_due_and_overdue_agree_with_the_ledger(tmp_path_factory: pytest.TempPathFactory,
                                                         schedule: list[tuple[int, int, int]]) -> None:
    """Any schedule: screening's days past due, bucket and overdue amount equal plans and the ledger's."""
    parts = [(AS_OF - timedelta(days=ago), Decimal(100), Decimal(paid_share) * 25 + Decimal(cents) / 100)
             for ago, paid_share, cents in schedule]
    parts = [(due, amount, min(paid, amount)) for due, amount, paid in parts]
    rows = [instalment("A", n, due, f"{amount:.2f}", f"{paid:.2f}", date(2026, 1, 1) if paid else None)
            for n, (due, amount, paid) in enumerate(parts, start=1)]
    account = Account("A", "Test", "+8613800000001", "zh", "Asia/Shanghai", "consumer", "CNY", "1234",
                      date(1980, 1, 1), installments=tuple(
                          Installment(n, due, amount, paid, date(2026, 1, 1) if paid else None)
                          for n, (due, amount, paid) in enumerate(parts, start=1)))
    row = screened(tmp_path_factory.mktemp("ledger"), [account_row("A", 1)], rows)["A"]
    dpd = plans.days_past_due(account, AS_OF)
    assert (row["days_past_due"], row["bucket"]) == (dpd, plans.bucket(dpd))
    assert Decimal(str(row["overdue_amount"])) == overdue(account, AS_OF).amount


# --- strategies ------------------------------------------------------------------------------------


def paid_on_time(account_id: str, count: int, start: int = 1) -> list[dict[str, str]]:
    return [instalment(account_id, n, date(2025, n, 1), "100.00", "100.00", date(2025, n, 1))
            for n in range(start, start + count)]


def paid_late(account_id: str, count: int, start: int = 1) -> list[dict[str, str]]:
    return [instalment(account_id, n, date(2025, n, 1), "100.00", "100.00", date(2025, n, 20))
            for n in range(start, start + count)]


def test_each_rule_is_hit_by_a_crafted_account(tmp_path: Path) -> None:
    last = lambda account_id, no, days, paid="0.00": instalment(  # noqa: E731
        account_id, no, AS_OF - timedelta(days=days), "100.00", paid, date(2026, 5, 1) if paid != "0.00" else None)
    rows = [
        unpaid_days_ago("BROKEN", 10),
        unpaid_days_ago("FAR", 100),
        unpaid_days_ago("WORRIED", 40),
        *paid_on_time("GOOD", 5), last("GOOD", 6, 10),
        *paid_on_time("HALF", 1), last("HALF", 2, 45),
        *paid_late("PARTIAL", 8), last("PARTIAL", 9, 40, paid="90.00"),
        unpaid_days_ago("LONG", 45),
        *paid_late("WEAK", 9), last("WEAK", 10, 10),
        *paid_on_time("MIXED", 6), *paid_late("MIXED", 3, start=7), last("MIXED", 10, 10),
    ]
    accounts = [account_row(a, i) for i, a in enumerate(
        ("BROKEN", "FAR", "CURRENT", "GOOD", "WORRIED", "HALF", "PARTIAL", "LONG", "WEAK", "MIXED"))]
    facts = pl.DataFrame({"account_id": ["BROKEN", "FAR", "WORRIED"], "broken_promises": [1, 0, 0],
                          "broken_plans": [1, 0, 0], "contact_attempts": [0, 3, 0], "hardship": [False, False, True],
                          "broken_promise_on": [date(2026, 5, 12), None, None]})
    result = screened(tmp_path, accounts, rows, facts=facts)
    rules = STRATEGIES.rules
    expected = {"BROKEN": rules[0], "FAR": rules[1], "CURRENT": rules[2], "GOOD": rules[3], "WORRIED": rules[4],
                "HALF": rules[5], "PARTIAL": rules[6], "LONG": rules[7], "WEAK": rules[8], "MIXED": STRATEGIES.default}
    for account_id, rule in expected.items():
        assert (account_id, result[account_id]["strategy"], result[account_id]["why"]) == \
            (account_id, rule.strategy, rule.why)
    assert result["BROKEN"]["reasons"] == (
        "10 days overdue; 100.00 CNY unpaid; paid 0% of the 1 instalment due so far; "
        "broke a promise on 12 May 2026; fell behind on a repayment plan")
    assert result["FAR"]["reasons"].endswith("3 contact attempts, none answered")
    assert result["FAR"]["priority"] > result["GOOD"]["priority"] > result["CURRENT"]["priority"] == 0


RULES_HEAD = """
rules:
  - strategy: gentle_sms
    when: {bucket: current}
    why: "nothing overdue"
"""
DEFAULT = """
default: {strategy: gentle_sms, why: "a reminder"}
priority: {weights: {days_past_due: 1}}
"""


@pytest.mark.parametrize(("rule", "tail", "message"), [
    ("{strategy: gentle_sms, when: {lateness: {min: 1}}, why: x}", DEFAULT, "rules[1].when.lateness: unknown metric"),
    ("{strategy: shout, when: {bucket: 90+}, why: x}", DEFAULT, "rules[1].strategy: 'shout' is not one of"),
    ("{strategy: agent_review, when: {days_past_due: {min: 60, max: 30}}, why: x}", DEFAULT,
     "rules[1].when.days_past_due: min 60 is above max 30"),
    ("{strategy: agent_review, when: {days_past_due: {min: ten}}, why: x}", DEFAULT,
     "rules[1].when.days_past_due.min: must be a number, not 'ten'"),
    ("{strategy: agent_review, when: {replied: 1}, why: x}", DEFAULT, "rules[1].when.replied: must be true or false"),
    ("{strategy: agent_review, when: {days_past_due: 5}, why: x}", DEFAULT,
     "rules[1].when.days_past_due: must be a range"),
    ("{strategy: agent_review, when: {bucket: 1-31}, why: x}", DEFAULT, "rules[1].when.bucket: must be one of"),
    ("{strategy: agent_review, when: {bucket: 90+}}", DEFAULT, "rules[1].why: must be a sentence"),
    ("{strategy: agent_review, when: {visit_outcome: legal_review}, why: x}", DEFAULT,
     "rules[1].when.visit_outcome: unknown metric"),
    ("{strategy: agent_review, when: {bucket: 90+}, why: x}", "priority: {weights: {days_past_due: 1}}",
     "default: missing"),
    ("{strategy: agent_review, when: {bucket: 90+}, why: x}", DEFAULT.replace("days_past_due: 1", "luck: 1"),
     "priority.weights.luck: unknown signal"),
])
def test_rules_file_errors_name_the_rule_and_field(tmp_path: Path, rule: str, tail: str, message: str) -> None:
    path = tmp_path / "strategies.yml"
    path.write_text(RULES_HEAD + f"  - {rule}\n" + tail, encoding="utf-8")
    with pytest.raises(StrategyError) as caught:
        load_strategies(path)
    assert message in str(caught.value)


def test_shipped_rules_file_loads() -> None:
    assert [r.strategy for r in STRATEGIES.rules][:2] == ["agent_review", "visit_proposal"]
    assert STRATEGIES.default.strategy == "gentle_sms"


# --- malformed input -------------------------------------------------------------------------------


def test_malformed_files_are_reported_with_line_numbers_and_nothing_is_written(tmp_path: Path) -> None:
    bad_phone = account_row("B", 2) | {"phone": "13800000002"}
    accounts, rows = ledger_files(tmp_path, [account_row("A", 1), bad_phone], [
        instalment("A", 1, date(2026, 1, 1), "100.00") | {"due_date": "2026-02-30"},
        instalment("A", 2, date(2026, 2, 1), "100.00"),
        instalment("A", 3, date(2026, 3, 1), "12,50"),
        instalment("GHOST", 1, date(2026, 3, 1), "100.00"),
    ])
    out = tmp_path / "runs" / "first"
    with pytest.raises(ScreeningInputError) as caught:
        run(accounts, rows, out, AS_OF, strategies=STRATEGIES, quiet=True)
    assert [str(e) for e in caught.value.errors] == [
        "accounts.csv:3: phone: must be E.164, e.g. +8613800138000",
        "installments.csv:2: due_date: must be a real calendar date written YYYY-MM-DD",
        "installments.csv:4: amount_due: must be a decimal number such as 1250.00, without currency sign",
        "installments.csv:5: account_id: is not in accounts.csv",
    ]
    assert caught.value.total == 4
    assert not (tmp_path / "runs").exists()


def test_missing_header_column_is_line_1(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,name\nA,Test\n", encoding="utf-8")
    _, rows = ledger_files(folder(tmp_path, "x"), [], [])
    with pytest.raises(ScreeningInputError) as caught:
        read_ledger(accounts, rows)
    assert str(caught.value.errors[0]).startswith("accounts.csv:1: phone,")


def test_error_list_is_capped_but_counts_everything(tmp_path: Path) -> None:
    rows = [instalment("GHOST", n, date(2026, 1, 1), "100.00") for n in range(1, 151)]
    with pytest.raises(ScreeningInputError) as caught:
        read_ledger(*ledger_files(tmp_path, [account_row("A", 1)], rows), today=READ_DAY)
    assert (len(caught.value.errors), caught.value.total) == (100, 150)
    assert "150 problem(s)" in str(caught.value)


# --- outputs --------------------------------------------------------------------------------------


def sample_result(tmp_path: Path, extra: int = 0) -> pl.DataFrame:
    accounts = [account_row("CUR", 1), account_row("LATE", 2), account_row("FAR", 3)]
    accounts += [account_row(f"X{i}", 10 + i) for i in range(extra)]
    rows = [unpaid_days_ago("LATE", 20), unpaid_days_ago("FAR", 95)]
    rows += [unpaid_days_ago(f"X{i}", 40) for i in range(extra)]
    frames = read_ledger(*ledger_files(tmp_path, accounts, rows), today=READ_DAY)
    return screen(*frames, as_of=AS_OF, strategies=STRATEGIES)


def test_collection_list_summary_and_report(tmp_path: Path) -> None:
    outputs = write_outputs(sample_result(tmp_path), tmp_path / "run")
    listed = pl.read_csv(outputs.collection_list)
    assert tuple(listed.columns) == LIST_COLUMNS
    assert not {"name", "phone", "id_last4", "birth_date", "address", "employer"} & set(listed.columns)
    assert listed.get_column("account_id").to_list() == ["FAR", "LATE", "CUR"]
    assert listed.get_column("priority").is_sorted(descending=True)
    summary = json.loads(outputs.summary.read_text(encoding="utf-8"))
    assert {b: g["count"] for b, g in summary["buckets"].items()} == \
        {"current": 1, "1-30": 1, "31-60": 0, "61-90": 0, "90+": 1}
    assert summary["buckets"]["90+"]["overdue_amount"] == {"CNY": 100.0}
    assert summary["as_of"] == "2026-06-01" and summary["overdue_amount"] == {"CNY": 200.0}
    assert summary["strategies"]["visit_proposal"]["count"] == 1
    assert all(p.is_file() and p.stat().st_size > 1000 for p in outputs.charts)
    page = outputs.report.read_text(encoding="utf-8")
    assert 'src="buckets.png"' in page and "No earlier run to compare with." in page


def test_report_escapes_hostile_text(tmp_path: Path) -> None:
    result = sample_result(tmp_path).with_columns(
        pl.when(pl.col("account_id") == "FAR").then(pl.lit("<script>alert(1)</script>"))
        .otherwise(pl.col("account_id")).alias("account_id"),
        pl.lit("<b>SH</b>").alias("region"),
    )
    page = write_outputs(result, tmp_path / "run").report.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>SH" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_changes_since_the_previous_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first = write_outputs(sample_result(folder(tmp_path, "a")), root / "one")
    second_dir = root / "two"
    assert latest_run(root, exclude=second_dir) == first.folder
    result = sample_result(folder(tmp_path, "b"), extra=2)
    page = write_outputs(result, second_dir, previous=latest_run(root, exclude=second_dir)).report.read_text()
    assert "Compared with the run of" in page
    assert "<tr><td>31-60</td><td>2</td><td>CNY 200.00</td><td>0</td><td>+2</td></tr>" in page
    assert "<tr><td>current</td><td>1</td><td>-</td><td>1</td><td>+0</td></tr>" in page


def test_an_existing_output_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(FileExistsError):
        write_outputs(sample_result(tmp_path), tmp_path / "run")


# --- facts from Redis -------------------------------------------------------------------------------


async def test_load_facts_reads_promises_arrangements_contacts_and_replies(services: Any) -> None:
    today = date(2026, 11, 29)
    cn001 = await services.ledger.get("CN001")
    await services.records.promise("CN001", "c_test", date(2026, 11, 20), Decimal("500"), Decimal("1500.00"))
    offer = plans.Offer(kind="plan", count=2, principal=Decimal("2000"), fee=Decimal(0), interest=Decimal(0),
                        schedule=(plans.Instalment(date(2026, 11, 10), Decimal("1000")),
                                  plans.Instalment(date(2026, 12, 10), Decimal("1000"))))
    await services.arrangements.accept(cn001, "c_test", offer, date(2026, 11, 1), "sms", yearly_limit=1)
    at = datetime(2026, 11, 28, 3, tzinfo=timezone.utc)
    for n, answered in enumerate((False, False, True)):
        await services.policy.record_attempt("US001", f"a{n}", Attempt(at, "call", answered))
    await services.redis.set(keys.last_reply("US002"), 1_790_000_000)
    await services.arrangements.record_reason("CN002", "c_other", "illness", "in hospital")

    facts = await load_facts(services, ["CN001", "CN002", "US001", "US002"], as_of=today, batch_size=3)
    rows = {r["account_id"]: r for r in facts.to_dicts()}
    cn001_facts = rows["CN001"]
    assert (cn001_facts["broken_promises"], cn001_facts["broken_plans"], cn001_facts["broken_promise_on"]) == \
        (1, 1, date(2026, 11, 20))
    assert (rows["US001"]["contact_attempts"], rows["US001"]["answered_contacts"]) == (3, 1)
    assert (rows["US002"]["replied"], rows["CN002"]["hardship"], rows["CN002"]["broken_promises"]) == (True, True, 0)

    samples = Path(__file__).resolve().parent.parent / "samples"
    frames = read_ledger(samples / "accounts.csv", samples / "installments.csv", today=today)
    result = {r["account_id"]: r for r in screen(*frames, as_of=today, facts=facts, strategies=STRATEGIES).to_dicts()}
    assert result["CN001"]["strategy"] == "agent_review"
    assert "broke a promise on 20 November 2026" in result["CN001"]["reasons"]
    assert result["CN002"]["hardship"] is True


def outcome(code: str, at: int, note: str = "") -> dict[str, Any]:
    return {"outcome": code, "at": at, "agent": "li.agent", "conversation": "c_test", "reason": "dispute",
            "note": note}


async def test_load_facts_takes_the_newest_agent_outcome_and_screening_gives_its_reason(services: Any) -> None:
    today = date(2026, 11, 29)
    for account_id, code, at in (("CN001", "promise", 1_790_000_000), ("CN001", "wrong_number", 1_790_000_100),
                                 ("CN002", "dispute_opened", 1_790_000_000), ("US001", "shouted", 1_790_000_000)):
        record = outcome(code, at, note="rang +8613800138000, spoke to 张伟")
        await services.redis.lpush(keys.agent_outcomes(account_id), services.vault.seal(record))

    facts = await load_facts(services, ["CN001", "CN002", "US001", "US002"], as_of=today, batch_size=3)
    assert dict(facts.select("account_id", "agent_outcome").iter_rows()) == \
        {"CN001": "wrong_number", "CN002": "dispute_opened", "US001": "other", "US002": None}

    samples = Path(__file__).resolve().parent.parent / "samples"
    frames = read_ledger(samples / "accounts.csv", samples / "installments.csv", today=today)
    result = {r["account_id"]: r for r in screen(*frames, as_of=today, facts=facts, strategies=STRATEGIES).to_dicts()}
    assert result["CN001"]["reasons"].endswith("; agent: wrong number on file")
    assert result["CN002"]["reasons"].endswith("; agent: dispute opened")
    assert "agent:" not in result["US001"]["reasons"] + result["US002"]["reasons"]


def test_agent_outcomes_reach_the_reasons_and_the_collection_list(tmp_path: Path) -> None:
    accounts = [account_row(a, i) for i, a in enumerate(("PROMISE", "PLAN", "NONE"), start=1)]
    rows = [unpaid_days_ago(a, 20) for a in ("PROMISE", "PLAN", "NONE")]
    facts = pl.DataFrame({"account_id": ["PROMISE", "PLAN"], "agent_outcome": ["promise", "plan"]})
    frames = read_ledger(*ledger_files(tmp_path, accounts, rows), today=READ_DAY)
    result = screen(*frames, as_of=AS_OF, facts=facts, strategies=STRATEGIES)
    reasons = dict(result.select("account_id", "reasons").iter_rows())
    assert reasons == {"PROMISE": "20 days overdue; 100.00 CNY unpaid; paid 0% of the 1 instalment due so far; "
                                  "agent: promise recorded",
                       "PLAN": "20 days overdue; 100.00 CNY unpaid; paid 0% of the 1 instalment due so far; "
                               "agent: plan agreed",
                       "NONE": "20 days overdue; 100.00 CNY unpaid; paid 0% of the 1 instalment due so far"}
    listed = pl.read_csv(write_outputs(result, tmp_path / "run").collection_list)
    assert dict(listed.select("account_id", "agent_outcome").iter_rows()) == \
        {"PROMISE": "promise", "PLAN": "plan", "NONE": None}


def visit_outcome(code: str, at: int, day: str = "") -> dict[str, Any]:
    """An entry as bot.field.visits.FieldVisits._record_outcome pushes it."""
    return {"code": code, "at": at, "booking_id": f"b_{at}", "went_ahead": True, "date": day}


async def test_load_facts_takes_the_newest_visit_outcome_and_screening_gives_its_reason(services: Any) -> None:
    today = date(2026, 11, 29)
    hostile = "told 张伟 at +8613800138000 to pay"
    for account_id, code, at in (("CN001", "promise", 1_790_000_000), ("CN001", "legal_review", 1_790_000_100),
                                 ("CN002", "paid_on_spot", 1_790_000_000), ("US001", hostile, 1_790_000_000)):
        record = visit_outcome(code, at, day="2026-12-05" if code == "promise" else "")
        await services.redis.zadd(keys.field_visit_outcomes(account_id), {services.vault.seal(record): at})
    agent = outcome("dispute_opened", 1_790_000_000, note="rang +8613800138000")
    await services.redis.lpush(keys.agent_outcomes("CN002"), services.vault.seal(agent))

    facts = await load_facts(services, ["CN001", "CN002", "US001", "US002"], as_of=today, batch_size=3)
    assert dict(facts.select("account_id", "visit_outcome").iter_rows()) == \
        {"CN001": "legal_review", "CN002": "paid_on_spot", "US001": "other", "US002": None}
    assert dict(facts.select("account_id", "agent_outcome").iter_rows()) == \
        {"CN001": None, "CN002": "dispute_opened", "US001": None, "US002": None}

    samples = Path(__file__).resolve().parent.parent / "samples"
    frames = read_ledger(samples / "accounts.csv", samples / "installments.csv", today=today)
    result = {r["account_id"]: r for r in screen(*frames, as_of=today, facts=facts, strategies=STRATEGIES).to_dicts()}
    assert result["CN001"]["reasons"].endswith("; field visit: sent for legal review")
    assert "field visit: promised to pay" not in result["CN001"]["reasons"]
    assert result["CN002"]["reasons"].endswith("; agent: dispute opened; field visit: paid on the spot")
    assert "field visit:" not in result["US001"]["reasons"] + result["US002"]["reasons"]
    assert hostile not in str(facts.to_dicts()) + str(list(result.values()))


def test_visit_outcomes_reach_the_reasons_and_the_collection_list(tmp_path: Path) -> None:
    names = ("PAID", "PLAN", "PROMISE", "REVISIT", "LEGAL", "OTHER", "NONE")
    accounts = [account_row(a, i) for i, a in enumerate(names, start=1)]
    rows = [unpaid_days_ago(a, 20) for a in names]
    codes = [*VISIT_OUTCOMES, "other"]
    facts = pl.DataFrame({"account_id": list(names[:-1]), "visit_outcome": codes,
                          "agent_outcome": [None, "plan", None, None, None, None]})
    frames = read_ledger(*ledger_files(tmp_path, accounts, rows), today=READ_DAY)
    result = screen(*frames, as_of=AS_OF, facts=facts, strategies=STRATEGIES)
    base = "20 days overdue; 100.00 CNY unpaid; paid 0% of the 1 instalment due so far"
    assert dict(result.select("account_id", "reasons").iter_rows()) == {
        "PAID": f"{base}; field visit: paid on the spot",
        "PLAN": f"{base}; agent: plan agreed; field visit: agreed a plan",
        "PROMISE": f"{base}; field visit: promised to pay",
        "REVISIT": f"{base}; field visit: follow-up visit due",
        "LEGAL": f"{base}; field visit: sent for legal review",
        "OTHER": base,
        "NONE": base,
    }
    listed = pl.read_csv(write_outputs(result, tmp_path / "run").collection_list)
    assert tuple(listed.columns) == LIST_COLUMNS
    assert dict(listed.select("account_id", "visit_outcome").iter_rows()) == \
        {**dict(zip(names[:-1], codes, strict=True)), "NONE": None}
