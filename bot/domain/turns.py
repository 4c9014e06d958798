"""A conversation's SMS turns: one at a time, in arrival order, and none lost while Rasa is down.

Twilio may deliver one borrower's messages together, to different gateways, and does not
retry an SMS webhook that answered 5xx. So:

- ``TurnOrder.hold``: every gateway queues a conversation's arriving messages in one Redis
  list (the push is atomic, so its order is the arrival order) and takes its turn when it
  is at the head. A holder that died is skipped once its lease runs out.
- ``PendingTurns``: a message Rasa could not take (down, restarting, its action server
  down) is kept, sealed, in the conversation's pending list; Twilio gets an empty answer.
  Later messages of that conversation queue behind it. Every gateway's drain loop
  (bot/edge/gateway.py) replays them in order once Rasa answers and texts the replies, each
  under its own outbox key, so a replay after a crash never sends a reply twice.

Keys (pseudonyms and MessageSids only): ``turns:order:<conversation>`` (list of tokens),
``turns:lease:<conversation>`` (hash token -> lease end, ms), ``turns:pending:<conversation>``
(list of sealed {"sid", "body"}), ``turns:waiting`` (sorted set of conversations with
pending turns, by first arrival).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from bot.core import keys
from bot.core.crypto import Vault

LEASE_MS = 20_000  # a turn's longest run (Rasa's 12 s timeout and the replies) with room to spare
PENDING_KEPT_SECONDS = 7 * 86400
POLL_SECONDS = (0.005, 0.05)  # first and longest pause between looks at the head of the line
NOT_YET, MINE = 0, 1  # what _MY_TURN answers (and 2: mine, but kept messages go first)

# Is it my turn? Renews my lease and drops heads whose holder's lease ran out. With ARGV[3] set, first
# joins the line (the push is the arrival order), so that joining and the first look are one round trip.
# 0: not yet; 1: mine; 2: mine, but the pending list KEYS[3] (when given) holds earlier messages.
_MY_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'join' then redis.call('RPUSH', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
if ARGV[3] == 'join' then  -- both exist now; a line whose holders all died goes with its leases
  redis.call('PEXPIRE', KEYS[1], ARGV[2] * 3)
  redis.call('PEXPIRE', KEYS[2], ARGV[2] * 3)
end
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then return 0 end
  if head == ARGV[1] then
    if KEYS[3] and redis.call('LLEN', KEYS[3]) > 0 then return 2 end
    return 1
  end
  local lease = tonumber(redis.call('HGET', KEYS[2], head) or '0')
  if lease >= now then return 0 end
  redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], head)
end
"""
# A conversation leaves the waiting set only when its list is empty, in one step with the check: a
# message kept at that moment must not be left out of every drain.
_FORGET_IF_EMPTY = """
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
"""


class Place:
    """A message's place in its conversation's line: true if its turn came (see ``TurnOrder.hold``)."""

    def __init__(self, mine: bool) -> None:
        self.mine = mine
        self.on_leaving: list[tuple[str, bytes, int]] = []

    def __bool__(self) -> bool:
        return self.mine

    def set_on_leaving(self, key: str, value: bytes, seconds: int) -> None:
        """Have ``key`` set to ``value`` (for ``seconds``) in the same step as the line is left."""
        self.on_leaving.append((key, value, seconds))


class TurnOrder:
    """One conversation's turns one at a time, in arrival order, across every gateway."""

    def __init__(self, redis: Any, lease_ms: int = LEASE_MS) -> None:
        self._redis = redis
        self._lease_ms = lease_ms
        self._my_turn = redis.register_script(_MY_TURN)

    @asynccontextmanager
    async def hold(self, conversation_id: str, wait_seconds: float, after_kept: bool = False) -> AsyncIterator[Place]:
        """Wait for this conversation's earlier messages; the place is false if they took longer than
        ``wait_seconds`` (the message then goes to the pending list, behind them) or, with ``after_kept``,
        if earlier ones are kept in the pending list (they go first; looked at in the same round trip)."""
        line = [keys.turn_order(conversation_id), keys.turn_leases(conversation_id)]
        if after_kept:
            line.append(keys.turns_pending(conversation_id))
        token = secrets.token_hex(8)
        place = Place(False)
        try:
            place.mine = await self._wait(line, token, wait_seconds)
            yield place
        finally:
            await asyncio.shield(self._leave(line, token, place.on_leaving))

    async def _leave(self, line: list[str], token: str, also_set: list[tuple[str, bytes, int]]) -> None:
        async with self._redis.pipeline(transaction=True) as tx:  # one step, as the line's scripts are
            tx.lrem(line[0], 1, token)
            tx.hdel(line[1], token)
            for key, value, seconds in also_set:
                tx.set(key, value, ex=seconds)
            await tx.execute()

    async def _wait(self, line: list[str], token: str, wait_seconds: float) -> bool:
        answer = await self._my_turn(keys=line, args=[token, self._lease_ms, "join"])
        deadline = time.monotonic() + wait_seconds
        pause = POLL_SECONDS[0]
        while answer == NOT_YET:
            if time.monotonic() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS[1])
            answer = await self._my_turn(keys=line, args=[token, self._lease_ms, ""])
        return bool(answer == MINE)


@dataclass(frozen=True)
class Pending:
    """A borrower's message that Rasa has not taken yet."""

    sid: str
    body: str


class PendingTurns:
    """Messages kept, in arrival order, until Rasa takes them. Each entry is one sealed record (so key
    rotation re-encrypts it like any other)."""

    def __init__(self, redis: Any, vault: Vault) -> None:
        self._redis = redis
        self._vault = vault
        self._forget_if_empty = redis.register_script(_FORGET_IF_EMPTY)

    async def add(self, conversation_id: str, sid: str, body: str) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            tx.rpush(keys.turns_pending(conversation_id), self._vault.seal({"sid": sid, "body": body}))
            tx.expire(keys.turns_pending(conversation_id), PENDING_KEPT_SECONDS)
            tx.zadd(keys.TURNS_WAITING, {conversation_id: time.time()}, nx=True)
            await tx.execute()

    async def waiting(self, conversation_id: str) -> bool:
        return bool(await self._redis.llen(keys.turns_pending(conversation_id)))

    async def conversations(self) -> list[str]:
        """Conversations with pending turns, longest waiting first."""
        return [c.decode() for c in await self._redis.zrange(keys.TURNS_WAITING, 0, -1)]

    async def first(self, conversation_id: str) -> Pending | None:
        raw = await self._redis.lindex(keys.turns_pending(conversation_id), 0)
        if raw is None:
            await self._forget(conversation_id)  # expired, or replayed by another gateway
            return None
        entry = self._vault.open(raw)
        return Pending(entry["sid"], entry["body"])

    async def done(self, conversation_id: str, sid: str) -> None:
        """Remove the first kept message if it is still the one with ``sid``."""
        key = keys.turns_pending(conversation_id)
        while True:
            try:
                async with self._redis.pipeline(transaction=True) as tx:
                    await tx.watch(key)
                    first = await tx.lindex(key, 0)
                    tx.multi()
                    if first is not None and self._vault.open(first)["sid"] == sid:
                        tx.lpop(key)
                    await tx.execute()
                break
            except WatchError:  # a message was kept meanwhile; look again
                continue
        await self._forget(conversation_id)

    async def _forget(self, conversation_id: str) -> None:
        await self._forget_if_empty(keys=[keys.turns_pending(conversation_id), keys.TURNS_WAITING],
                                    args=[conversation_id])
