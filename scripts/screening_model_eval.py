"""The learned priority against the rules and two baselines, on real repayment data (UCI credit card clients).

    .venv/bin/python scripts/screening_model_eval.py          (or: make screening-eval)

Converts the data to our ledger (scripts/uci_credit.py), screens it as of 1 October 2005, and compares, on
the same 5 stratified folds of the 30,000 clients:
- the rules' priority (policy/strategies.yml; nothing trained);
- a logistic regression on the dataset's 23 raw columns (standardised);
- gradient boosting on the raw columns (scikit-learn's HistGradientBoosting, default settings);
- the learned priority: bot.screening.model.train on screening's features, with labels read from the
  ledger (`screen train --as-of 2005-10-01 --horizon 30`), scored against the dataset's own outcome.
Writes the figures into docs/screening-model.md between its RESULTS markers.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import uci_credit  # noqa: E402

from bot.screening import model as priority_model  # noqa: E402
from bot.screening import priority  # noqa: E402

FOLDS = 5
SEED = 7
DOC = ROOT / "docs" / "screening-model.md"
BEGIN, END = "<!-- RESULTS BEGIN -->", "<!-- RESULTS END -->"
RAW_COLUMNS = ("LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5",
               "PAY_6", *(f"BILL_AMT{i}" for i in range(1, 7)), *(f"PAY_AMT{i}" for i in range(1, 7)))


def load(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Screening metrics, ledger labels, the dataset's outcome and raw columns, all in account order."""
    source = uci_credit.fetch()
    if not (folder / "installments.csv").is_file():
        uci_credit.convert(source, folder)
    accounts, installments = priority.read_ledger(folder / "accounts.csv", folder / "installments.csv")
    metrics = priority.metrics(accounts, installments, uci_credit.AS_OF).sort("account_id")
    labels = priority_model.labels(installments, uci_credit.AS_OF, uci_credit.HORIZON_DAYS)
    outcome = pl.read_csv(folder / "outcomes.csv", schema_overrides={"account_id": pl.String})
    # Some amounts are written as 1.00E+05 (the file went through a spreadsheet): read all as floats.
    raw = pl.read_csv(source, infer_schema=False).select(
        pl.format("TW{}", pl.col("ID").str.zfill(5)).alias("account_id"),
        *(pl.col(c).cast(pl.Float64) for c in RAW_COLUMNS))
    frame = (metrics.select("account_id")
             .join(outcome, on="account_id", how="left", maintain_order="left")
             .join(labels, on="account_id", how="left", maintain_order="left")
             .join(raw, on="account_id", how="left", maintain_order="left"))
    target = frame.get_column("defaulted").to_numpy().astype(np.int8)
    ledger_label = frame.get_column("label").fill_null(0).to_numpy().astype(np.int8)
    raw_x = frame.select(RAW_COLUMNS).to_numpy().astype(np.float64)
    return accounts, metrics, target, ledger_label, raw_x


def measures(y: np.ndarray, score: np.ndarray, probability: np.ndarray | None) -> dict[str, float]:
    found = {"auc": priority_model.auc(y, score), "lift10": priority_model.lift(y, score, 0.10)["lift"],
             "bad10": priority_model.lift(y, score, 0.10)["bad_rate"],
             "lift20": priority_model.lift(y, score, 0.20)["lift"]}
    if probability is not None:
        found["ece"] = priority_model.calibration_error(priority_model.calibration_table(y, probability))
        found["brier"] = float(np.mean((probability - y) ** 2))
    return found


def cross_validate(metrics: pl.DataFrame, target: np.ndarray, ledger_label: np.ndarray, raw_x: np.ndarray
                   ) -> dict[str, list[dict[str, float]]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rules = priority.rule_priority(metrics).to_numpy()
    features = priority_model.matrix(metrics)
    found: dict[str, list[dict[str, float]]] = {"rules": [], "logistic_raw": [], "boosting_raw": [], "learned": []}
    window = {"as_of": uci_credit.AS_OF.isoformat(), "horizon_days": uci_credit.HORIZON_DAYS}
    for fold, (fit, test) in enumerate(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(raw_x, target)):
        found["rules"].append(measures(target[test], rules[test], None))
        logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(raw_x[fit], target[fit])
        p = logistic.predict_proba(raw_x[test])[:, 1]
        found["logistic_raw"].append(measures(target[test], p, p))
        boosting = HistGradientBoostingClassifier(random_state=SEED).fit(raw_x[fit], target[fit])
        p = boosting.predict_proba(raw_x[test])[:, 1]
        found["boosting_raw"].append(measures(target[test], p, p))
        learned = priority_model.train(features[fit], ledger_label[fit], window, seed=SEED + fold)
        p = learned.probability(features[test])
        found["learned"].append(measures(target[test], p, p))
    return found


def table(found: dict[str, list[dict[str, float]]]) -> list[str]:
    names = {"rules": "rules (policy/strategies.yml)", "logistic_raw": "logistic regression, raw columns",
             "boosting_raw": "gradient boosting, raw columns", "learned": "learned priority (screen train)"}
    lines = ["| method | ROC AUC (mean ± sd of 5 folds) | top-10% bad rate | lift at 10% | lift at 20% | "
             "calibration error | Brier |", "|---|---|---|---|---|---|---|"]
    for key, folds in found.items():
        def mean(name: str, folds: list[dict[str, float]] = folds) -> float:
            return float(np.mean([f[name] for f in folds]))
        aucs = [f["auc"] for f in folds]
        ece, brier = (f"{mean('ece'):.3f}", f"{mean('brier'):.4f}") if "ece" in folds[0] else ("-", "-")
        lines.append(f"| {names[key]} | {np.mean(aucs):.3f} ± {np.std(aucs):.3f} | {mean('bad10'):.1%} | "
                     f"{mean('lift10'):.2f} | {mean('lift20'):.2f} | {ece} | {brier} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "uci-credit")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave the doc alone")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    _, metrics, target, ledger_label, raw_x = load(args.data)
    agree = float(np.mean(ledger_label == target))
    found = cross_validate(metrics, target, ledger_label, raw_x)
    seconds = time.perf_counter() - started
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({seconds:.0f} s in all) with "
             f"`.venv/bin/python scripts/screening_model_eval.py`: {len(target):,} clients, {int(target.sum()):,} "
             f"defaulted ({target.mean():.1%}); the ledger's own labels (as of {uci_credit.AS_OF}, "
             f"{uci_credit.HORIZON_DAYS} days) agree with the dataset's outcome for {agree:.2%} of them.", "",
             *table(found)]
    print("\n".join(lines))
    if not args.no_write:
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{chr(10).join(lines)}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
