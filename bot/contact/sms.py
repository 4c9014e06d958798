"""SMS specifics: segment counting and the keywords handled at the edge."""

from __future__ import annotations

import math
import re

# GSM 03.38 basic set; the extension set costs two septets per character.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")
MAX_SEGMENTS = 3

OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT", "OPT-OUT",
           "退订", "TD"}  # TCPA-REVOCATION-2025.revocation_words, and more
OPT_IN = {"START", "UNSTOP"}
HELP = {"HELP", "INFO", "帮助"}


def keyword(body: str) -> str | None:
    """The edge keyword a message consists of, if any ("opt_out", "opt_in", "help")."""
    word = " ".join(body.strip().strip(".!。！").upper().split())
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    return None


def segments(text: str) -> int:
    """Number of SMS segments Twilio will bill for ``text``."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def _cut(text: str, limit: int) -> list[str]:
    """Split text that no sentence boundary can save, at the longest prefix that fits."""
    pieces = []
    while segments(text) > limit:
        low, high = 1, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if segments(text[:middle]) <= limit else (low, middle - 1)
        pieces.append(text[:low])
        text = text[low:]
    return pieces + [text]


def _pieces(message: str, limit: int) -> list[str]:
    if segments(message) <= limit:
        return [message]
    return [cut for sentence in _SENTENCE_END.split(message) if sentence for cut in _cut(sentence, limit)]


def pack(messages: list[str], limit: int = MAX_SEGMENTS) -> list[str]:
    """Join a turn's replies into as few SMS as possible, each within ``limit`` segments.

    A reply too long for one SMS is split between sentences (or, failing that,
    where it must), so no SMS ever exceeds the limit.
    """
    packed: list[str] = []
    for message in (m.strip() for m in messages if m and m.strip()):
        for piece in _pieces(message, limit):
            if packed and segments(packed[-1] + "\n" + piece) <= limit:
                packed[-1] += "\n" + piece
            else:
                packed.append(piece)
    return packed
