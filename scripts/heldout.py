"""Intent F1 per language on tests/nlu, counting only messages absent from the training data.

    .venv/bin/rasa test nlu --nlu tests/nlu --model models/collections.tar.gz --successes --out results/heldout
    .venv/bin/python scripts/heldout.py results/heldout --min-f1 0.9

Exits with status 1 when a language falls below --min-f1, so `make test` catches regressions.
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


def training_texts() -> set[str]:
    texts: set[str] = set()
    for path in (ROOT / "data" / "nlu").rglob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" in block:
                texts.update(line.strip()[2:] for line in block["examples"].splitlines()
                             if line.strip().startswith("- "))
    return texts


def main(folder: Path, min_f1: float) -> int:
    seen = training_texts()
    rows = [r for name in ("intent_successes.json", "intent_errors.json") if (folder / name).exists()
            for r in json.loads((folder / name).read_text(encoding="utf-8")) if r["text"] not in seen]
    print("| language | unseen messages | macro F1 | fell back (nlu_fallback) |")
    print("|---|---|---|---|")
    worst = 1.0
    for lang in ("zh", "en"):
        mine = [r for r in rows if language(r["text"]) == lang]
        truth = [r["intent"] for r in mine]
        predicted = [r["intent_prediction"]["name"] for r in mine]
        fallbacks = sum(p == "nlu_fallback" for p in predicted)
        f1 = f1_score(truth, predicted, average="macro")
        worst = min(worst, f1)
        print(f"| {lang} | {len(mine)} | {f1:.3f} | {fallbacks} |")
    if worst < min_f1:
        print(f"intent F1 {worst:.3f} is below the required {min_f1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("results/heldout"))
    parser.add_argument("--min-f1", type=float, default=0.0)
    args = parser.parse_args()
    sys.exit(main(args.folder, args.min_f1))
