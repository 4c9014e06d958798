"""What the command groups share: the one way a command gets its settings, and how input is refused."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bot.core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def settings() -> Settings:
    """Settings as `run` gives them to its children: its own Redis unless REDIS_URL is set."""
    from bot.ops.supervisor import DEFAULT_REDIS_PORT

    return load_settings({"REDIS_URL": f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0", **os.environ})


def rejected(exc: Exception) -> int:
    """Say why the input was refused, with every bad row the error lists; the exit code for it."""
    print(f"rejected: {exc}", file=sys.stderr)
    for error in getattr(exc, "errors", ()):
        print(f"  {error}", file=sys.stderr)
    return 1


def unreadable(path: Path, nothing_was: str) -> bool:
    """True, having said so, when ``path`` is not a file to read."""
    if path.is_file():
        return False
    print(f"rejected: {path} is not a readable file; nothing was {nothing_was}", file=sys.stderr)
    return True
