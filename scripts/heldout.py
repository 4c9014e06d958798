"""Intent accuracy per language on tests/nlu; the gate counts only messages absent from the training data.

    .venv/bin/rasa test nlu --nlu tests/nlu --model models/collections.tar.gz --successes --out results/heldout
    .venv/bin/python scripts/heldout.py results/heldout --min-accuracy 0.95

Exits with status 1 when a language falls below --min-accuracy, so `make test` catches regressions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from f1_by_language import language  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FALLBACK_THRESHOLD = 0.3  # config.yml's FallbackClassifier threshold


def training_texts() -> set[str]:
    texts: set[str] = set()
    for path in (ROOT / "data" / "nlu").rglob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" in block:
                texts.update(line.strip()[2:] for line in block["examples"].splitlines()
                             if line.strip().startswith("- "))
    return texts


def main(folder: Path, min_accuracy: float) -> int:
    seen = training_texts()
    rows = [r for name in ("intent_successes.json", "intent_errors.json") if (folder / name).exists()
            for r in json.loads((folder / name).read_text(encoding="utf-8"))]
    print("| language | messages | of them unseen | accuracy (unseen) | macro F1 (unseen) | accuracy (all) "
          "| below the fallback threshold |")
    print("|---|---|---|---|---|---|---|")
    worst = 1.0
    for lang in ("zh", "en"):
        mine = [r for r in rows if language(r["text"]) == lang]
        unseen = [r for r in mine if r["text"] not in seen]
        accuracy = _accuracy(unseen)
        f1 = f1_score([r["intent"] for r in unseen], [_predicted(r) for r in unseen], average="macro")
        unsure = sum(r["intent_prediction"]["confidence"] < FALLBACK_THRESHOLD for r in mine)
        worst = min(worst, accuracy)
        print(f"| {lang} | {len(mine)} | {len(unseen)} | {accuracy:.3f} | {f1:.3f} | {_accuracy(mine):.3f} "
              f"| {unsure} |")
    if worst < min_accuracy:
        print(f"intent accuracy {worst:.3f} is below the required {min_accuracy}", file=sys.stderr)
        return 1
    return 0


def _predicted(row: dict) -> str:
    return row["intent_prediction"]["name"]


def _accuracy(rows: list[dict]) -> float:
    return sum(r["intent"] == _predicted(r) for r in rows) / len(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("results/heldout"))
    parser.add_argument("--min-accuracy", type=float, default=0.0,
                        help="exit 1 when a language's accuracy on unseen messages is below this")
    args = parser.parse_args()
    sys.exit(main(args.folder, args.min_accuracy))
