"""Intent F1 per language from `rasa test nlu --cross-validation --successes` output.

    .venv/bin/python scripts/f1_by_language.py results/cv
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from sklearn.metrics import f1_score

_CJK = re.compile(r"[\u4e00-\u9fff]")


def language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def main(folder: Path) -> None:
    rows = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = folder / name
        if path.exists():
            rows += json.loads(path.read_text(encoding="utf-8"))
    print("| language | examples | macro F1 | weighted F1 | accuracy |")
    print("|---|---|---|---|---|")
    for lang in ("zh", "en"):
        mine = [r for r in rows if language(r["text"]) == lang]
        truth = [r["intent"] for r in mine]
        predicted = [(r.get("intent_prediction") or {}).get("name") or "" for r in mine]
        accuracy = sum(t == p for t, p in zip(truth, predicted, strict=False)) / len(mine)
        print(f"| {lang} | {len(mine)} | {f1_score(truth, predicted, average='macro'):.3f} | "
              f"{f1_score(truth, predicted, average='weighted'):.3f} | {accuracy:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/cv"))
