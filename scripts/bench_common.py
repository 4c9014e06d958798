"""What the benchmark scripts share: percentiles, the machine a report was measured on, and writing it out."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

PYTHON = f"Python {platform.python_version()}"


def percentile(values: list[float], share: float) -> float:
    """The value ``share`` (0 to 1) of the way through ``values`` in order, by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def machine_line(*details: str) -> str:
    """``Measured <UTC minute> on <n> cores (<machine>, <details>...)``; the caller ends the sentence."""
    return (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores "
            f"({', '.join((platform.machine(), *details))})")


def emit(text: str, out: Path | None, heading: str = "") -> None:
    """Print the report and, given ``out``, write it there after ``heading``."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(heading + text, encoding="utf-8")
