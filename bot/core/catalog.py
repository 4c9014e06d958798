"""The bot's words, read from the domain's responses.

Each response has an English default variation and one variation per other
language, chosen by the `language` slot condition. The gateway and the actions
render through here so that a message's language never depends on when Rasa
applies a slot event.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale

DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain.yml"


class _KeepMissing(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _language_of(variation: Mapping[str, Any]) -> str | None:
    for condition in variation.get("condition") or []:
        if condition.get("name") == "language":
            return str(condition.get("value"))
    return None


def pick(responses: Mapping[str, Any], name: str, language: str, channel: str | None = None) -> str:
    """The text of response ``name`` for ``language``, preferring ``channel``'s own variation.

    English variations carry no language condition and serve any language that
    has none of its own.

    Raises:
        KeyError: no such response.
    """
    variations = responses[name]
    candidates = [v for v in variations if _language_of(v) == language] or [
        v for v in variations if _language_of(v) is None] or list(variations)
    for wanted in (channel, None):
        for variation in candidates:
            if variation.get("channel") == wanted:
                return str(variation["text"])
    return str(candidates[0]["text"])


def render(responses: Mapping[str, Any], name: str, language: str, channel: str | None = None,
           **values: Any) -> str:
    """Fill a response's {placeholders}; unknown ones are left as written."""
    template = pick(responses, name, language, channel)
    return string.Formatter().vformat(template, (), _KeepMissing(values))


def counted(responses: Mapping[str, Any], name: str, count: int, language: str, channel: str | None = None) -> str:
    """``count`` things in words, by the language's CLDR plural rules (Babel): "1 instalment", "3 instalments".

    The wording is the response ``{name}_{form}`` for Babel's plural form of ``count`` ("one", "other", …),
    falling back to ``{name}_other``; so a voice never reads out "instalment(s)".
    """
    form = Locale.parse(language).plural_form(count)
    chosen = f"{name}_{form}" if f"{name}_{form}" in responses else f"{name}_other"
    return render(responses, chosen, language, channel, count=count)


@lru_cache(maxsize=1)
def responses() -> dict[str, Any]:
    """The domain file's responses, read once per process."""
    return load_responses()


def load_responses(path: Path = DOMAIN_FILE) -> dict[str, Any]:
    """The ``responses`` section of the domain file."""
    with path.open(encoding="utf-8") as file:
        return dict(yaml.safe_load(file)["responses"])
