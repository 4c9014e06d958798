"""A short digest of a function's source: how a patch tells it still replaces the code it was written for."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any


def code_digest(function: Any) -> str:
    """The first 16 hex digits of the SHA-256 of a function's source."""
    source = inspect.getsource(getattr(function, "__func__", function))
    return hashlib.sha256(source.encode()).hexdigest()[:16]
