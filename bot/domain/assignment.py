"""Offering new hand-offs to agents: the least loaded agent on shift who answers in the borrower's
language and has room (holds fewer conversations than their capacity).

An offer is a name on the waiting item (``offered_to``): the offered agent sees it first, anyone may
still claim it, and a supervisor may still reassign what is held. An offer stands while its agent is
on shift, speaks the language and has room; otherwise the conversation is offered again. Offers are
made by whichever console page asks first (under a lock, so two pages do not offer at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core import keys
from bot.domain.agents import Desk

# KEYS: item. ARGV: agent ("" to withdraw). Only a conversation still waiting is offered.
_OFFER = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'agent') == 1 then return 0 end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'offered_to')
else
  redis.call('HSET', KEYS[1], 'offered_to', ARGV[1])
end
return 1
"""
LOCK_SECONDS = 10


@dataclass(frozen=True)
class Waiting:
    """A waiting conversation as assignment sees it, in queue order."""

    conversation_id: str
    language: str
    offered_to: str | None


def choose(waiting: list[Waiting], desks: list[Desk], held: dict[str, int]) -> dict[str, str | None]:
    """Who each waiting conversation is offered to (None: nobody has room), most urgent first.

    ``held``: conversations each agent holds now. An offer counts as held for the next choice.
    """
    load = dict(held)
    able = [d for d in desks if d.on_shift and d.role == "agent"]
    chosen: dict[str, str | None] = {}
    for item in waiting:
        speaking = [d for d in able if item.language in d.languages]
        current = next((d for d in speaking if d.username == item.offered_to), None)
        if current is not None and load.get(current.username, 0) < current.capacity:
            pick: Desk | None = current
        else:
            free = [d for d in speaking if load.get(d.username, 0) < d.capacity]
            pick = min(free, key=lambda d: (load.get(d.username, 0), d.username)) if free else None
        chosen[item.conversation_id] = pick.username if pick else None
        if pick is not None:
            load[pick.username] = load.get(pick.username, 0) + 1
    return chosen


class Assigner:
    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._offer = redis.register_script(_OFFER)

    async def apply(self, waiting: list[Waiting], desks: list[Desk], held: dict[str, int]) -> dict[str, str | None]:
        """Make the offers ``choose`` makes, where they change; returns them. Skipped (empty) while another
        console page is making them."""
        lock = self._redis.lock(keys.ASSIGN_LOCK, timeout=LOCK_SECONDS, blocking=False)
        if not await lock.acquire():
            return {}
        try:
            chosen = choose(waiting, desks, held)
            for item in waiting:
                if chosen[item.conversation_id] != item.offered_to:
                    await self._offer(keys=[keys.handoff(item.conversation_id)],
                                      args=[chosen[item.conversation_id] or ""])
            return chosen
        finally:
            await lock.release()
