"""`screen train`: labels from what the ledger shows after a past day, the learned priority fitted on the
features screening computed that day, saved with its model card."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bot.screening import model as priority_model
from bot.screening import partitions, priority
from bot.screening.model import DEFAULT_MODEL, ModelError

__all__ = ["DEFAULT_MODEL", "ModelError", "Saved", "model_card_text", "train_from_ledger"]


@dataclass(frozen=True)
class Saved:
    summary: str
    paths: tuple[Path, ...]


def train_from_ledger(accounts_csv: Path, installments_csv: Path, as_of: date, horizon_days: int,
                      path: Path = DEFAULT_MODEL, today: date | None = None) -> Saved:
    """Train on the ledger as it stood on ``as_of`` and save the model and its card (``path`` and ``.md``).

    Records kept in Redis (promises, contacts, agents' and visits' outcomes) are not used: they are kept as
    they are now, not as they were on ``as_of``, and would tell the model what happened after it.

    Raises:
        ScreeningInputError: a malformed input file.
        ModelError: nothing to learn from (no account went bad, or all did).
    """
    if as_of + timedelta(days=horizon_days) > (today or date.today()):
        raise ModelError(f"the window {as_of} + {horizon_days} days has not ended: its labels would call every "
                         "payment not yet due unpaid; choose an --as-of at least --horizon days ago")
    x, y = _examples(accounts_csv, installments_csv, as_of, horizon_days)
    if len(y) == 0:
        raise ModelError(f"no account had anything due or overdue around {as_of}: choose another --as-of")
    window = {"as_of": as_of.isoformat(), "horizon_days": horizon_days,
              "label": "missed a payment falling due in the window, or did not clear arrears by its end"}
    trained = priority_model.train(x, y, window)
    trained.save(path)
    card_path = path.with_suffix(".md")
    card_path.write_text(model_card_text(trained.card), encoding="utf-8")
    held = trained.card["held_out"]
    summary = (f"trained on {len(y):,} accounts ({int(y.sum()):,} went bad) as of {as_of}, "
               f"{horizon_days} days: held-out AUC {held['auc']:.3f}, top-10% lift {held['top_10']['lift']:.2f}, "
               f"calibration error {held['calibration_error']:.3f}")
    return Saved(summary, (path, card_path))


def _examples(accounts_csv: Path, installments_csv: Path, as_of: date, horizon_days: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Features on ``as_of`` and labels of the accounts with something to miss; a big ledger part by part."""
    if partitions.parts_for(installments_csv) == 1:
        return _labelled(*priority.read_ledger(accounts_csv, installments_csv), as_of, horizon_days)
    work = Path(tempfile.mkdtemp(prefix="screen-train-"))  # private (0700): the parts hold the ledger's text
    try:
        plan = partitions.split(accounts_csv, installments_csv, work, partitions.parts_for(installments_csv))
        errors, examples = [partitions.whole_file_errors(plan)], []
        for index in range(plan.parts):
            found, typed = partitions.checked_part(plan, index, date.today())
            errors.append(found)
            if typed is not None:
                examples.append(_labelled(*typed, as_of, horizon_days))
        if (every := pl.concat(errors)).height:
            priority.raise_errors(every)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return np.concatenate([x for x, _ in examples]), np.concatenate([y for _, y in examples])


def _labelled(accounts: pl.DataFrame, installments: pl.DataFrame, as_of: date, horizon_days: int
              ) -> tuple[np.ndarray, np.ndarray]:
    features = priority.metrics(accounts, installments, as_of)
    labelled = features.join(priority_model.labels(installments, as_of, horizon_days), on="account_id", how="inner")
    return priority_model.matrix(labelled), labelled.get_column("label").to_numpy().astype(np.int8)


def model_card_text(card: dict[str, Any]) -> str:
    """The model card as Markdown, for the folder the model is saved in."""
    held, window, rows = card["held_out"], card["window"], card["rows"]
    lines = [
        "# Screening priority: model card", "",
        f"- Model: {card['model']} ({card['version']}), {card['trees']} trees; trained {card['trained_at']}.",
        f"- Training window: as of {window['as_of']}, horizon {window['horizon_days']} days; label: "
        f"{window.get('label', 'went bad in the window')}.",
        f"- Rows: {rows['accounts']:,} accounts, {rows['bad']:,} bad; {rows['held_out']:,} held out for early "
        "stopping, calibration and the figures below (so they are a little optimistic).",
        f"- Held out: ROC AUC {held['auc']:.3f}; top 10%: bad rate {held['top_10']['bad_rate']:.1%}, lift "
        f"{held['top_10']['lift']:.2f}; top 20%: lift {held['top_20']['lift']:.2f}; calibration error "
        f"{held['calibration_error']:.3f}.", "",
        "| decile | predicted | observed | accounts |", "|---|---|---|---|",
        *(f"| {i + 1} | {row['predicted']:.3f} | {row['observed']:.3f} | {row['accounts']:,} |"
          for i, row in enumerate(held["calibration"])), "",
        "| feature | direction held | gain |", "|---|---|---|",
        *(f"| {f['name']} | {_direction(f['direction'])} | {f['gain']:,.0f} |" for f in card["features"]), "",
    ]
    return "\n".join(lines)


def _direction(direction: int) -> str:
    return {1: "more is riskier", -1: "more is safer"}.get(direction, "learned")
