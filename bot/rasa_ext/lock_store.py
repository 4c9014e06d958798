"""Rasa's Redis lock store, with every change to a lock made in one step on the server.

Rasa 3.6's RedisLockStore reads a conversation's ticket lock, changes it in Python and
writes it back. Two Rasa processes issuing a ticket at the same moment can both read the
same lock: both take the same number, one write is lost, and both turns run at once on
one conversation (tests/test_lock_store.py shows it). Here issuing, finishing and
expiring tickets are Lua scripts over the same JSON, so any number of Rasa processes on
one Redis serve a conversation's turns one at a time, in the order they asked. A lock key
also expires with its last ticket, where the stock one stays forever.

Used from endpoints.yml as ``type: bot.rasa_ext.lock_store.AtomicRedisLockStore``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

# The lock is {"conversation_id": id, "tickets": ["{\"number\": n, \"expires\": t}", ...]}, as TicketLock
# writes it. Every script drops expired tickets first, as TicketLock does on every read.
_LOAD = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function load(key)
  local raw = redis.call('GET', key)
  local tickets = {}
  if raw then
    local t = now()
    for _, item in ipairs(cjson.decode(raw)['tickets'] or {}) do
      local ticket = cjson.decode(item)
      if ticket['expires'] >= t then table.insert(tickets, ticket) end
    end
  end
  return tickets
end
local function save(key, conversation_id, tickets)
  if #tickets == 0 then
    redis.call('DEL', key)
    return nil
  end
  local items, last = {}, 0
  for i, ticket in ipairs(tickets) do
    items[i] = cjson.encode(ticket)
    last = math.max(last, ticket['expires'])
  end
  local lock = cjson.encode({conversation_id = conversation_id, tickets = items})
  redis.call('SET', key, lock, 'PX', math.max(1, math.ceil((last - now()) * 1000) + 1000))
  return lock
end
"""
_ISSUE = _LOAD + """
local tickets = load(KEYS[1])
local number = 0
if #tickets > 0 then number = tickets[#tickets]['number'] + 1 end
table.insert(tickets, {number = number, expires = now() + tonumber(ARGV[2])})
return {number, save(KEYS[1], ARGV[1], tickets)}
"""
_FINISH = _LOAD + """
local kept = {}
for _, ticket in ipairs(load(KEYS[1])) do
  if ticket['number'] ~= tonumber(ARGV[2]) then table.insert(kept, ticket) end
end
save(KEYS[1], ARGV[1], kept)
"""
_EXPIRE = _LOAD + """
save(KEYS[1], ARGV[1], load(KEYS[1]))
"""


class AtomicRedisLockStore(RedisLockStore):
    """A RedisLockStore safe to share between several Rasa processes."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        kwargs["password"] = kwargs.get("password") or None
        super().__init__(**kwargs)
        self._issue = self.red.register_script(_ISSUE)
        self._finish = self.red.register_script(_FINISH)
        self._expire = self.red.register_script(_EXPIRE)

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        return self._issue_and_read(conversation_id, lock_lifetime)[0]

    def _issue_and_read(self, conversation_id: str, lock_lifetime: float) -> tuple[int, TicketLock]:
        """A new ticket and the lock just after it was issued, in one call."""
        try:
            number, lock = self._issue(keys=[self.key_prefix + conversation_id], args=[conversation_id, lock_lifetime])
        except redis.RedisError as exc:
            raise LockError(f"Error while acquiring lock: {type(exc).__name__}") from exc
        return int(number), TicketLock.from_dict(json.loads(lock))

    @asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float = 1) -> AsyncIterator[TicketLock]:
        """Rasa's lock, but a ticket served at once is known from the call that issued it: one round trip
        to Redis fewer on every turn (the gateway lets one turn per conversation through at a time)."""
        ticket, lock = self._issue_and_read(conversation_id, lock_lifetime)
        try:
            if lock.is_locked(ticket):
                lock = await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
            yield lock
        finally:
            self.cleanup(conversation_id, ticket)

    def update_lock(self, conversation_id: str) -> None:
        self._expire(keys=[self.key_prefix + conversation_id], args=[conversation_id])

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self._finish(keys=[self.key_prefix + conversation_id], args=[conversation_id, ticket_number])

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        # The script deletes the lock once no ticket is left; the stock check-then-delete could drop a
        # ticket issued in between.
        self.finish_serving(conversation_id, ticket_number)
