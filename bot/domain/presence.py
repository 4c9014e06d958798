"""Who else has a conversation open in the console, so two people don't answer the borrower at once.

Each open conversation page says it is still there every few seconds; a viewer not heard from for
``SEEN_SECONDS`` is gone (a closed laptop says nothing). The claim already keeps two agents from
holding one conversation; this shows the supervisor reading over the holder's shoulder, and the
holder to the supervisor.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bot.core import keys

SEEN_SECONDS = 25  # three missed heartbeats of the page (every 8 s)


@dataclass(frozen=True)
class Viewer:
    username: str
    role: str


class Presence:
    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def seen(self, conversation_id: str, viewer: Viewer, now: float | None = None) -> bool:
        """Note the viewer; True if they were not there a moment ago (others should hear of it)."""
        now = time.time() if now is None else now
        key = keys.console_viewers(conversation_id)
        member = json.dumps([viewer.username, viewer.role])
        async with self._redis.pipeline(transaction=True) as tx:
            tx.zremrangebyscore(key, "-inf", now - SEEN_SECONDS)
            tx.zadd(key, {member: now})
            tx.expire(key, SEEN_SECONDS * 2)
            _, added, _ = await tx.execute()
        return bool(added)

    async def left(self, conversation_id: str, viewer: Viewer) -> None:
        await self._redis.zrem(keys.console_viewers(conversation_id), json.dumps([viewer.username, viewer.role]))

    async def others(self, conversation_id: str, username: str, now: float | None = None) -> list[Viewer]:
        """Everyone else seen on the page lately, by name."""
        now = time.time() if now is None else now
        members = await self._redis.zrangebyscore(keys.console_viewers(conversation_id), now - SEEN_SECONDS, "+inf")
        found = {Viewer(*json.loads(m)) for m in members}
        return sorted((v for v in found if v.username != username), key=lambda v: v.username)
