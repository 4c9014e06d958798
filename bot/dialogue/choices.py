"""Which of the options we listed a borrower picked ("2", "the second one", "我选第二个").

Only a reply that is nothing but a choice counts: "after 2pm", "wait a second" or
"第一次" are not picks, and the flows read them as what they are.
"""

from __future__ import annotations

import re

_NUMBERS = {"前者": 1, "后者": 2, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "first": 1, "second": 2,
            "third": 3, "fourth": 4, "fifth": 5, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_LEADING = re.compile(r"^(?:i'?ll take|i will take|i(?:'d)? (?:choose|pick|want|like)|let'?s do|go with|ok(?:ay)?|"
                      r"yes|well|so|then|um+|uh+|好吧|那我选|那我要|我就选|就选|嗯+|行|那|"
                      r"我选|我要|我挑|选择|选|要|就|那就|好|option|number|no\.|#|the)\s*")
_TRAILING = re.compile(r"\s*(?:one|option|please|pls|plz|个方案|个时间|方案|个|号|项|种|吧|呗|了|啊|哈)$")
_CHOICE = re.compile(r"^第?\s*([1-9]|[一二两三四五]|前者|后者|first|second|third|fourth|fifth|one|two|three|four|five)"
                     r"(?:st|nd|rd|th)?$")


def read_choice_number(text: str, choices: int) -> int | None:
    """The position (1-based) of the option picked, or None when the reply is not just a pick."""
    rest = re.sub(r"[\s,，.。!！~]+", " ", text.lower()).strip()
    for pattern in (_LEADING, _TRAILING) * 3:  # "ok I'll take the second one please"
        rest = pattern.sub("", rest).strip()
    found = _CHOICE.match(rest)
    if not found:
        return None
    word = found.group(1)
    number = int(word) if word.isdigit() else _NUMBERS[word]
    return number if number <= choices else None
