"""The append-only audit stream: who did what to which record, and when; ids and codes, never personal data."""

from __future__ import annotations

import time
from typing import Any

from bot.core import keys


def record(target: Any, event: str, at: object = None, **fields: str) -> Any:
    """Append one event to the audit stream.

    Args:
        target: a Redis client (await the result) or a pipeline (the entry joins its transaction).
        at: epoch seconds of the event; now by default.
    """
    return target.xadd(keys.AUDIT_STREAM, {"event": event, "at": str(int(time.time()) if at is None else at),
                                           **fields})
