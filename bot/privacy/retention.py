"""Deleting what is kept no longer than the law and the work need.

Most records expire by themselves (Redis TTLs set when they are written): conversations
(CONVERSATION_RETENTION_DAYS, from their last turn), contact attempts (CONTACT_RETENTION_DAYS),
field visit records and reports (VISIT_RECORD_RETENTION_DAYS). What grows instead of expiring is
trimmed here: the audit stream (AUDIT_RETENTION_DAYS: it proves who saw what, so it outlives the
data it names), the contact-decision stream, and visit outcome entries past their period. The
gateway sweeps every hour; ``python -m bot retention`` sweeps once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.core import keys

DAY = 86400


@dataclass(frozen=True)
class Swept:
    audit_events: int
    contact_decisions: int
    visit_outcomes: int


async def sweep(svc: Any, now: float | None = None) -> Swept:
    """Trim the streams and outcome sets to their retention periods; returns how many entries went."""
    now = time.time() if now is None else now
    settings = svc.settings
    audit = await _trim_stream(svc.redis, keys.AUDIT_STREAM, now - settings.audit_retention_days * DAY)
    decisions = await _trim_stream(svc.redis, keys.CONTACT_DECISIONS, now - settings.contact_retention_days * DAY)
    oldest_visit = now - settings.visit_record_retention_days * DAY
    outcomes = 0
    async for key in svc.redis.scan_iter(match=keys.field_visit_outcomes("*"), count=1000):
        outcomes += await svc.redis.zremrangebyscore(key, "-inf", f"({oldest_visit}")
    return Swept(audit, decisions, outcomes)


async def _trim_stream(redis: Any, key: str, oldest: float) -> int:
    """Drop stream entries older than ``oldest`` (entry ids are their millisecond timestamps)."""
    trimmed: int = await redis.xtrim(key, minid=f"{int(oldest * 1000)}-0", approximate=False)
    return trimmed
