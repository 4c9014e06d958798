"""The words that tell what a message is about beside its intent, kept as data in bot/dialogue/cues.yml."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

CUES = Path(__file__).with_name("cues.yml")
LANGUAGES = ("en", "zh")


@cache
def _patterns() -> dict[str, re.Pattern[str]]:
    cues = yaml.safe_load(CUES.read_text(encoding="utf-8"))
    return {name: re.compile("|".join(f"(?:{p})" for lang in LANGUAGES for p in by_language.get(lang, [])), re.I)
            for name, by_language in cues.items()}


def says(cue: str, text: str) -> bool:
    """The text has one of the cue's phrasings, in either language."""
    return _patterns()[cue].search(text) is not None


def names() -> list[str]:
    return list(_patterns())
