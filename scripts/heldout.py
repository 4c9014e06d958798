"""Intent F1 per language on tests/nlu, counting only messages absent from the training data.

    .venv/bin/rasa test nlu --nlu tests/nlu --model models/collections.tar.gz --successes --out results/heldout
    .venv/bin/python scripts/heldout.py results/heldout
"""

from __future__ import annotations

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


def main(folder: Path) -> None:
    seen = training_texts()
    rows = [r for name in ("intent_successes.json", "intent_errors.json") if (folder / name).exists()
            for r in json.loads((folder / name).read_text(encoding="utf-8")) if r["text"] not in seen]
    print("| language | unseen messages | macro F1 | fell back (nlu_fallback) |")
    print("|---|---|---|---|")
    for lang in ("zh", "en"):
        mine = [r for r in rows if language(r["text"]) == lang]
        truth = [r["intent"] for r in mine]
        predicted = [r["intent_prediction"]["name"] for r in mine]
        fallbacks = sum(p == "nlu_fallback" for p in predicted)
        print(f"| {lang} | {len(mine)} | {f1_score(truth, predicted, average='macro'):.3f} | {fallbacks} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/heldout"))
