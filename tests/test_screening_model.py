"""The learned priority: labels from the ledger, training, saving, explained ranking, and `screen train`."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bot.__main__ import main as bot_main
from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS
from bot.screening import model as priority_model
from bot.screening import partitions
from bot.screening.model import FEATURE_NAMES, ModelError, labels, load, matrix
from bot.screening.priority import Condition, Rule, load_strategies, metrics, read_ledger, screen
from bot.screening.reasons import PHRASES
from bot.screening.training import train_from_ledger
from tests.csv_files import write_csv

AS_OF = date(2026, 6, 1)  # pinned: every date below is relative to it
READ_DAY = date(2026, 12, 31)
MONTHS = 6



def synthetic_ledger(folder: Path, accounts: int = 800, seed: int = 3) -> tuple[Path, Path]:
    """Accounts whose habit of paying late (their first six months) predicts missing the payment due in June."""
    rng = np.random.default_rng(seed)
    account_rows, rows = [], []
    for n in range(accounts):
        account_id = f"S{n:04d}"
        account_rows.append({"account_id": account_id, "name": "Test", "phone": f"+86138{n:08d}", "language": "zh",
                             "timezone": "Asia/Shanghai", "product": "consumer", "currency": "CNY",
                             "id_last4": "1234", "birth_date": "1980-01-01", "address": "", "employer": "",
                             "region": "SH"})
        lateness = 0.7 if rng.random() < 0.3 else 0.08  # two habits: often late, seldom late
        for month in range(MONTHS + 1):
            due = AS_OF - timedelta(days=30 * (MONTHS - month)) + timedelta(days=9)
            in_window = month == MONTHS
            late = rng.random() < lateness
            paid_on = "" if (late and in_window) else (due + timedelta(days=12 if late else -1)).isoformat()
            if not in_window and due + timedelta(days=12) >= AS_OF and late:
                paid_on = ""
            rows.append({"account_id": account_id, "installment_no": str(month + 1), "due_date": due.isoformat(),
                         "amount_due": "100.00", "amount_paid": "100.00" if paid_on else "0",
                         "paid_date": paid_on})
    return (write_csv(folder / "accounts.csv", ACCOUNT_COLUMNS, account_rows),
            write_csv(folder / "installments.csv", INSTALLMENT_COLUMNS, rows))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("ledger")
    accounts, installments = synthetic_ledger(folder)
    model_path = folder / "priority.json"
    train_from_ledger(accounts, installments, AS_OF, 30, model_path)
    return accounts, installments, model_path


# --- labels --------------------------------------------------------------------------------------


def lines(*rows: tuple[str, date, int, int, date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"account_id": a, "due_date": d, "amount_due": due, "amount_paid": paid, "paid_date": on, "minimum_due": None}
         for a, d, due, paid, on in rows],
        schema={"account_id": pl.String, "due_date": pl.Date, "amount_due": pl.Int64, "amount_paid": pl.Int64,
                "paid_date": pl.Date, "minimum_due": pl.Int64})


def test_labels_read_what_happened_in_the_window() -> None:
    day = AS_OF
    frame = lines(
        ("MISSED", day + timedelta(days=10), 100, 0, None),
        ("PAID", day + timedelta(days=10), 100, 100, day + timedelta(days=12)),
        ("PAID_AFTER", day + timedelta(days=10), 100, 100, day + timedelta(days=31)),  # after the window
        ("CLEARED", day - timedelta(days=20), 100, 100, day + timedelta(days=5)),      # arrears, nothing due
        ("BEHIND", day - timedelta(days=20), 100, 0, None),
        ("NOTHING", day - timedelta(days=40), 100, 100, day - timedelta(days=41)),     # nothing to miss
        ("LATER", day + timedelta(days=45), 100, 0, None),
    )
    found = dict(labels(frame, day, 30).iter_rows())
    assert found == {"BEHIND": 1, "CLEARED": 0, "MISSED": 1, "PAID": 0, "PAID_AFTER": 1}


# --- training and the saved model ----------------------------------------------------------------


def test_the_trained_model_ranks_held_out_habits_and_saves_its_card(trained: tuple[Path, Path, Path]) -> None:
    _, _, model_path = trained
    card = json.loads(model_path.read_text(encoding="utf-8"))["card"]
    assert card["window"]["as_of"] == AS_OF.isoformat() and card["window"]["horizon_days"] == 30
    assert card["rows"]["accounts"] == 800 and 0 < card["rows"]["bad"] < 800
    assert card["held_out"]["auc"] > 0.75
    assert [f["name"] for f in card["features"]] == list(FEATURE_NAMES)
    assert "| decile | predicted | observed | accounts |" in model_path.with_suffix(".md").read_text(encoding="utf-8")


def test_a_big_ledger_trains_part_by_part_on_the_same_examples(
        trained: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts, installments, model_path = trained
    monkeypatch.setattr(partitions, "PART_BYTES", installments.stat().st_size // 3)
    train_from_ledger(accounts, installments, AS_OF, 30, tmp_path / "parts.json")
    whole, in_parts = (json.loads(p.read_text(encoding="utf-8"))["card"]["rows"] for p in (model_path,
                                                                                          tmp_path / "parts.json"))
    assert (in_parts["accounts"], in_parts["bad"]) == (whole["accounts"], whole["bad"])
    assert not any(p.name.endswith("training-parts") for p in installments.parent.iterdir())


def test_a_saved_model_gives_the_same_probabilities_when_loaded(trained: tuple[Path, Path, Path]) -> None:
    accounts, installments, model_path = trained
    x = matrix(metrics(*read_ledger(accounts, installments, today=READ_DAY), AS_OF))
    first, second = load(model_path), load(model_path)
    probability = first.probability(x)
    assert np.array_equal(probability, second.probability(x))
    assert ((probability >= 0) & (probability <= 1)).all()


def test_the_contributions_add_up_to_each_account_s_score(trained: tuple[Path, Path, Path]) -> None:
    accounts, installments, model_path = trained
    x = matrix(metrics(*read_ledger(accounts, installments, today=READ_DAY), AS_OF))
    model = load(model_path)
    assert np.allclose(model.contributions(x).sum(axis=1) + model.bias, model.raw(x))


def test_more_recent_lateness_never_lowers_the_probability(trained: tuple[Path, Path, Path]) -> None:
    accounts, installments, model_path = trained
    x = matrix(metrics(*read_ledger(accounts, installments, today=READ_DAY), AS_OF))[:50]
    column = FEATURE_NAMES.index("late_last_3")
    model = load(model_path)
    previous = None
    for late in range(4):
        x[:, column] = late
        probability = model.probability(x)
        if previous is not None:
            assert (probability >= previous - 1e-12).all()
        previous = probability


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "cannot be read as a model file"),
    (json.dumps({"format": "other"}), "not a collections-priority/1 model file"),
    (json.dumps({"format": priority_model.FORMAT, "features": ["days_past_due"]}), "trained on other features"),
    (json.dumps({"format": priority_model.FORMAT, "features": list(FEATURE_NAMES), "codes": priority_model._codes(),
                 "trees": "not trees", "calibration": {"x": [], "y": []}, "card": {}}), "damaged model file"),
])
def test_an_unusable_model_file_is_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        load(path)


@pytest.mark.parametrize("bad", [0, 3])
def test_too_few_of_a_kind_say_what_to_change(bad: int) -> None:
    y = np.array([1] * bad + [0] * 200)
    with pytest.raises(ModelError, match="too few accounts went bad"):
        priority_model.train(np.zeros((len(y), len(FEATURE_NAMES))), y, {})


def test_a_window_not_yet_ended_is_refused(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    accounts, installments, _ = trained
    with pytest.raises(ModelError, match="has not ended"):
        train_from_ledger(accounts, installments, AS_OF, 30, tmp_path / "m.json", today=AS_OF + timedelta(days=29))


# --- ranking with the model ----------------------------------------------------------------------


def test_every_feature_has_words_in_both_languages() -> None:
    assert set(FEATURE_NAMES) <= set(PHRASES)


def test_screening_with_the_model_ranks_by_probability_and_explains_in_both_languages(
        trained: tuple[Path, Path, Path]) -> None:
    accounts, installments, model_path = trained
    result = screen(*read_ledger(accounts, installments, today=READ_DAY), as_of=AS_OF, model=load(model_path))
    assert result.get_column("priority").to_list() == sorted(result.get_column("priority").to_list(), reverse=True)
    top = result.row(0, named=True)
    assert top["priority"] == round(top["default_probability"] * 100, 1)
    assert "on time" in top["reasons"] and "按时" in top["reasons_zh"]
    assert len(top["reasons"].split("; ")) == len(top["reasons_zh"].split("；")) <= 3


def test_a_strategy_rule_can_read_the_probability(trained: tuple[Path, Path, Path]) -> None:
    accounts, installments, model_path = trained
    strategies = load_strategies()
    likely = Rule("agent_review", "likely to miss the next payment", (Condition("default_probability", low=0.5),))
    strategies = type(strategies)((likely, *strategies.rules), strategies.default, strategies.priority)
    frames = read_ledger(accounts, installments, today=READ_DAY)
    learned = screen(*frames, as_of=AS_OF, model=load(model_path), strategies=strategies)
    chosen = learned.filter(pl.col("strategy") == "agent_review").get_column("default_probability")
    assert chosen.len() > 0 and chosen.min() >= 0.5
    ruled = screen(*frames, as_of=AS_OF, strategies=strategies)  # no model: no probability, the rule never fires
    assert ruled.get_column("default_probability").null_count() == ruled.height


# --- the command ---------------------------------------------------------------------------------


def test_screen_train_needs_the_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accounts, installments = synthetic_ledger(tmp_path, accounts=20)
    code = bot_main(["screen", "train", "--accounts", str(accounts), "--installments", str(installments)])
    assert code == 2 and "needs --as-of" in capsys.readouterr().err


def test_screen_train_then_screen_uses_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accounts, installments = synthetic_ledger(tmp_path, accounts=300)
    model_path = tmp_path / "m.json"
    assert bot_main(["screen", "train", "--accounts", str(accounts), "--installments", str(installments),
                     "--as-of", AS_OF.isoformat(), "--model", str(model_path)]) == 0
    assert "held-out AUC" in capsys.readouterr().out
    out = tmp_path / "run"
    assert bot_main(["screen", "--accounts", str(accounts), "--installments", str(installments), "--as-of",
                     AS_OF.isoformat(), "--model", str(model_path), "--no-records", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["priority"] == "learned"
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "learned probability of missing the next payment" in report and (out / "model.png").is_file()
