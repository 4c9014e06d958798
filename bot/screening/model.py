"""The learned priority: the probability that an account misses its next payment, from the bank's own ledger.

``labels`` reads what happened after a past day in the ledger itself; ``train`` fits gradient-boosted trees
(LightGBM) on the features screening computes, with monotonic constraints where the direction is known,
calibrates them on a held-out part (isotonic), and returns a ``PriorityModel`` that saves to one JSON file
(the trees as LightGBM's text, the calibration as two lists, the model card): nothing is unpickled.

Why LightGBM rather than scikit-learn's HistGradientBoosting: its trees can be read back (``dump_model``),
which each account's per-feature contributions are computed from (the reasons), it takes monotonic
constraints and missing values, and it trains 1M accounts in minutes on two cores (docs/screening-model.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bot.domain.handoffs import OUTCOMES as AGENT_OUTCOMES

FORMAT = "collections-priority/1"
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "screening-priority.json"
# bot.field.visits.OUTCOMES (not imported: it pulls in dateparser); "other" as load_facts reads unknown codes.
VISIT_CODES = ("paid_on_spot", "plan", "promise", "follow_up_visit", "legal_review", "other")
AGENT_CODES = tuple(dict.fromkeys((*AGENT_OUTCOMES, "other")))  # OUTCOMES may hold "other" already


@dataclass(frozen=True)
class Feature:
    """A model input: a column of the screening result, and the direction its effect is held to
    (+1: more means riskier, -1: less risky, 0: learned freely)."""

    name: str
    direction: int = 0
    codes: tuple[str, ...] = ()  # a category's codes, in the order they are numbered


FEATURES = (
    Feature("days_past_due"),  # not monotone: on real data 90+ defaults less often than 61-90
    Feature("overdue_amount"),
    Feature("installments_due"),
    Feature("on_time_rate", -1),
    Feature("paid_ratio", -1),
    Feature("full_pay_ratio", -1),
    Feature("last_paid_ratio", -1),
    Feature("last_full_pay", -1),
    Feature("late_last_3", +1),
    Feature("late_instalments", +1),
    Feature("unpaid_instalments", +1),
    Feature("since_late"),
    Feature("paid_in_full_last_3", -1),
    Feature("current_streak", +1),
    Feature("longest_streak"),
    Feature("partial_payments"),
    Feature("utilisation", +1),
    Feature("credit_limit"),
    Feature("latest_balance"),
    Feature("last_payment"),
    Feature("balance_trend"),
    Feature("broken_promises", +1),
    Feature("broken_plans", +1),
    Feature("contact_attempts"),
    Feature("answered_contacts"),
    Feature("replied"),
    Feature("hardship"),
    Feature("agent_outcome", codes=AGENT_CODES),
    Feature("visit_outcome", codes=VISIT_CODES),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
# LightGBM's settings, chosen on the UCI data (scripts/screening_model_eval.py); fixed seed, same result each run.
PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 50,
    "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "seed": 7, "deterministic": True, "num_threads": 2, "verbose": -1,
}
MAX_ROUNDS = 600
EARLY_STOP_ROUNDS = 40
HELD_OUT_SHARE = 0.2
CALIBRATION_BINS = 10
MIN_PER_CLASS = 10  # accounts that went bad, and that did not, below which nothing is learned


class ModelError(ValueError):
    """A model file that cannot be used; the message says why."""


# --- labels from the ledger ------------------------------------------------------------------------


def labels(installments: pl.DataFrame, as_of: date, horizon_days: int) -> pl.DataFrame:
    """Per account, whether it went bad in the ``horizon_days`` after ``as_of`` (1) or not (0).

    Bad: an instalment falling due in the window (as_of up to the window's end) was not paid as required
    by the window's end; for an account with nothing falling due in the window, arrears it had on
    ``as_of`` were not cleared by the window's end. Accounts with nothing due and no arrears are left out
    (there was nothing to miss). Payments count from their paid_date, as recorded.
    """
    end = as_of + timedelta(days=horizon_days)
    required = pl.coalesce("minimum_due", "amount_due").clip(lower_bound=0)
    paid_by = pl.when(pl.col("paid_date") <= pl.lit(end)).then(pl.col("amount_paid")).otherwise(0)
    paid_before = pl.when(pl.col("paid_date") <= pl.lit(as_of)).then(pl.col("amount_paid")).otherwise(0)
    in_window = (pl.col("due_date") >= pl.lit(as_of)) & (pl.col("due_date") < pl.lit(end))
    in_arrears = (pl.col("due_date") < pl.lit(as_of)) & (paid_before < required)
    frame = installments.select("account_id", in_window.alias("window"), in_arrears.alias("arrears"),
                                (paid_by < required).alias("unpaid"))
    per_account = frame.group_by("account_id").agg(
        pl.col("window").any().alias("has_window"),
        (pl.col("window") & pl.col("unpaid")).any().alias("missed"),
        pl.col("arrears").any().alias("has_arrears"),
        (pl.col("arrears") & pl.col("unpaid")).any().alias("still_behind"),
    )
    bad = pl.when(pl.col("has_window")).then(pl.col("missed")).otherwise(pl.col("still_behind"))
    return (per_account.filter(pl.col("has_window") | pl.col("has_arrears"))
            .select("account_id", bad.cast(pl.Int8).alias("label")).sort("account_id"))


# --- the feature matrix ----------------------------------------------------------------------------


def matrix(result: pl.DataFrame) -> np.ndarray:
    """The screening result's FEATURES as a float matrix (categories numbered, unknown or none as missing)."""
    columns = []
    for feature in FEATURES:
        column = pl.col(feature.name)
        if feature.codes:
            column = column.replace_strict({c: i for i, c in enumerate(feature.codes)}, default=None,
                                           return_dtype=pl.Float64)
        columns.append(column.cast(pl.Float64).alias(feature.name))
    return result.select(columns).to_numpy().astype(np.float64)


# --- training --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    per_leaf: np.ndarray  # [tree * leaves + leaf, feature]: each feature's share on the path to that leaf
    leaves: int  # the most leaves of any tree (the stride of per_leaf)
    bias: float


def _path_attributions(dump: dict[str, Any]) -> _Paths:
    trees = dump["tree_info"]
    leaves = max(tree["num_leaves"] for tree in trees)
    per_leaf = np.zeros((len(trees) * leaves, len(FEATURES)))
    bias = 0.0
    for index, tree in enumerate(trees):
        root = tree["tree_structure"]
        bias += root.get("internal_value", root.get("leaf_value", 0.0))
        stack = [(root, np.zeros(len(FEATURES)))]
        while stack:
            node, shares = stack.pop()
            if "split_feature" not in node:
                per_leaf[index * leaves + node.get("leaf_index", 0)] = shares
                continue
            for side in ("left_child", "right_child"):
                child = node[side]
                moved = shares.copy()
                moved[node["split_feature"]] += child.get("internal_value", child.get("leaf_value")) - node[
                    "internal_value"]
                stack.append((child, moved))
    return _Paths(per_leaf, leaves, bias)


@dataclass
class PriorityModel:
    """Trees, their calibration and the model card."""

    booster: Any  # lightgbm.Booster
    calibration_x: list[float]
    calibration_y: list[float]
    card: dict[str, Any]
    _paths: _Paths | None = None

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, raw_score=True)) if len(x) else np.zeros(0)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """The calibrated probability of going bad."""
        return _calibrated(self.raw(x), self.calibration_x, self.calibration_y)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each feature's share of each account's log-odds; columns as FEATURES.

        Path attribution (Saabas; as treeinterpreter): along each tree's path to the account's leaf, each
        split's change of the node value goes to the split's feature, so the shares and ``bias`` add up to
        the raw score. Exact TreeSHAP (LightGBM's pred_contrib) took 45 s per 300,000 accounts here; this
        takes 3 s (a leaf per tree, then one sparse product).
        """
        from scipy import sparse

        if len(x) == 0:
            return np.zeros((0, len(FEATURES)))
        paths = self._path_table()
        leaves = np.asarray(self.booster.predict(x, pred_leaf=True), dtype=np.int64).reshape(len(x), -1)
        trees = leaves.shape[1]
        # Row i picks one leaf per tree: a 0/1 matrix whose product with per_leaf sums the trees' shares.
        picked = sparse.csr_matrix(
            (np.ones(leaves.size), (leaves + np.arange(trees) * paths.leaves).ravel(),
             np.arange(0, leaves.size + 1, trees)), shape=(len(x), trees * paths.leaves))
        return np.asarray(picked @ paths.per_leaf)

    @property
    def bias(self) -> float:
        """The raw score every account starts from (the sum of the trees' root values)."""
        return self._path_table().bias

    def _path_table(self) -> _Paths:
        if self._paths is None:
            self._paths = _path_attributions(self.booster.dump_model())
        return self._paths

    def save(self, path: Path) -> None:
        document = {"format": FORMAT, "card": self.card, "features": list(FEATURE_NAMES), "codes": _codes(),
                    "calibration": {"x": self.calibration_x, "y": self.calibration_y},
                    "trees": self.booster.model_to_string()}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        partial.replace(path)


def load(path: Path) -> PriorityModel:
    """A saved model, checked against this code's features.

    Raises:
        ModelError: the file is not a model of this format or was trained on other features.
    """
    import lightgbm

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot be read as a model file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelError(f"{path}: not a {FORMAT} model file")
    if document.get("features") != list(FEATURE_NAMES) or document.get("codes") != _codes():
        raise ModelError(f"{path}: trained on other features or codes; train it again with "
                         "`python -m bot screen train`")
    try:
        booster = lightgbm.Booster(model_str=document["trees"])
        calibration = document["calibration"]
        return PriorityModel(booster, list(calibration["x"]), list(calibration["y"]), dict(document["card"]))
    except (lightgbm.basic.LightGBMError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None


def _codes() -> dict[str, list[str]]:
    """Each category's codes in the order they are numbered: a model is read with the numbering it learned."""
    return {f.name: list(f.codes) for f in FEATURES if f.codes}


def train(x: np.ndarray, y: np.ndarray, window: dict[str, Any], seed: int = 7) -> PriorityModel:
    """Fit on a random 80% of the rows, stop and calibrate on the other 20%, and write the card's figures
    from that held-out part."""
    import lightgbm
    from sklearn.isotonic import IsotonicRegression

    if min(int(y.sum()), len(y) - int(y.sum())) < MIN_PER_CLASS:
        raise ModelError(f"too few accounts went bad ({int(y.sum())}) or did not ({len(y) - int(y.sum())}) to learn "
                         f"from: each needs {MIN_PER_CLASS}; choose another --as-of day, or a longer --horizon")
    held_out = _held_out(y, seed)
    params = {**PARAMS, "seed": seed, "monotone_constraints": [f.direction for f in FEATURES]}
    categorical = [i for i, f in enumerate(FEATURES) if f.codes]
    fit = lightgbm.Dataset(x[~held_out], y[~held_out], feature_name=list(FEATURE_NAMES),
                           categorical_feature=categorical, free_raw_data=True)
    check = lightgbm.Dataset(x[held_out], y[held_out], reference=fit)
    booster = lightgbm.train(params, fit, num_boost_round=MAX_ROUNDS, valid_sets=[check],
                             callbacks=[lightgbm.early_stopping(EARLY_STOP_ROUNDS, verbose=False)])
    raw = np.asarray(booster.predict(x[held_out], raw_score=True))
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y[held_out])
    model = PriorityModel(booster, [float(v) for v in isotonic.X_thresholds_],
                          [float(v) for v in isotonic.y_thresholds_], {})
    model.card = card(window, y, held_out, y[held_out], model.probability(x[held_out]), booster)
    return model


def _held_out(y: np.ndarray, seed: int) -> np.ndarray:
    """HELD_OUT_SHARE of each class, at random: both classes are in the part the figures come from."""
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(y), dtype=bool)
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        held_out[rng.choice(members, max(1, round(len(members) * HELD_OUT_SHARE)), replace=False)] = True
    return held_out


def _calibrated(raw: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    return np.interp(raw, np.asarray(xs), np.asarray(ys))


# --- measures --------------------------------------------------------------------------------------


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (ties share their rank)."""
    from scipy.stats import rankdata

    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def lift(y: np.ndarray, score: np.ndarray, share: float) -> dict[str, float]:
    """Of the top ``share`` by score: the bad rate, and that rate over the overall one."""
    top = max(1, int(round(len(y) * share)))
    order = np.argsort(-score, kind="stable")[:top]
    rate = float(y[order].mean())
    return {"bad_rate": round(rate, 4), "lift": round(rate / float(y.mean()), 2)}


def calibration_table(y: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Predicted and observed bad rates per decile of predicted probability."""
    order = np.argsort(probability, kind="stable")
    table = []
    for part in np.array_split(order, bins):
        if len(part):
            table.append({"predicted": round(float(probability[part].mean()), 4),
                          "observed": round(float(y[part].mean()), 4), "accounts": int(len(part))})
    return table


def calibration_error(table: list[dict[str, float]]) -> float:
    """Expected calibration error: the accounts-weighted mean gap between predicted and observed rates."""
    total = sum(row["accounts"] for row in table)
    return round(sum(abs(row["predicted"] - row["observed"]) * row["accounts"] for row in table) / total, 4)


def card(window: dict[str, Any], y: np.ndarray, held_out: np.ndarray, y_check: np.ndarray,
         probability: np.ndarray, booster: Any) -> dict[str, Any]:
    """What the model is, what it was trained on and how it did on the held-out accounts."""
    import lightgbm

    table = calibration_table(y_check, probability)
    gain = booster.feature_importance(importance_type="gain")
    return {
        "model": "LightGBM gradient-boosted trees, isotonic calibration",
        "version": f"lightgbm {lightgbm.__version__}, {FORMAT}",
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "window": window,
        "rows": {"accounts": int(len(y)), "bad": int(y.sum()), "held_out": int(held_out.sum())},
        "trees": int(booster.num_trees()),
        "held_out": {"auc": round(auc(y_check, probability), 4), "top_10": lift(y_check, probability, 0.10),
                     "top_20": lift(y_check, probability, 0.20), "calibration": table,
                     "calibration_error": calibration_error(table)},
        "features": [{"name": f.name, "direction": f.direction, "gain": round(float(g), 1)}
                     for f, g in zip(FEATURES, gain, strict=True)],
    }
