"""The handoff queue as agents work it: claim, reassign, hand back, close with an outcome.

A conversation waits in ``handoff:queue`` (queued by bot.domain.records) and, once an agent
claims it, sits in ``handoff:held`` with the agent's name on its item. Each change
of hands is one Lua script, so two agents never hold the same conversation, and
each publishes a notice (no personal data) on the console's channel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from bot.core import audit, keys
from bot.core.crypto import Vault
from bot.domain.records import Records, console_notice

OUTCOMES = ("promise", "plan", "dispute_opened", "wrong_number", "no_contact", "other")
OUTCOMES_KEPT = 50
MAX_NOTE_LENGTH = 2000

# KEYS: item, queue, held. ARGV: conversation, agent, now. 1 claimed, 0 held by someone, -1 gone.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'agent') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'agent', ARGV[2], 'claimed_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""
# KEYS: item. ARGV: new agent, now. Only a held conversation changes hands.
_REASSIGN = """
if redis.call('HEXISTS', KEYS[1], 'agent') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'agent', ARGV[1], 'claimed_at', ARGV[2])
return 1
"""
# KEYS: item. ARGV: now. An agent answered: the first-reply clock stops for good, the next-reply one for now.
_REPLIED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'first_reply_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'waiting_since')
return 1
"""
# KEYS: item. ARGV: now. The borrower wrote: after an agent's reply, the next-reply clock starts (once).
_WROTE = """
if redis.call('HEXISTS', KEYS[1], 'first_reply_at') == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'waiting_since', ARGV[1])
"""
# KEYS: item, held. ARGV: conversation, agent. Only the holder lets go; the item goes with it.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Item:
    """One handed-off conversation: why, how urgent, since when, and who holds it."""

    conversation_id: str
    account_id: str
    reason: str
    priority: int
    since: int
    agent: str | None = None
    claimed_at: int | None = None
    first_reply_at: int | None = None  # the first human reply
    waiting_since: int | None = None  # the borrower's first message since the last human reply
    offered_to: str | None = None  # the agent a waiting conversation is offered to (bot.domain.assignment)

    def waiting_minutes(self, now: float) -> int:
        return max(0, int(now - self.since) // 60)


class Handoffs:
    """Agents' side of the handoff queue."""

    def __init__(self, redis: Any, vault: Vault, records: Records) -> None:
        self._redis = redis
        self._vault = vault
        self._records = records
        self._claim = redis.register_script(_CLAIM)
        self._reassign = redis.register_script(_REASSIGN)
        self._release = redis.register_script(_RELEASE)
        self._replied = redis.register_script(_REPLIED)
        self._wrote = redis.register_script(_WROTE)

    async def item(self, conversation_id: str) -> Item | None:
        record = await self._redis.hgetall(keys.handoff(conversation_id))
        return _item(conversation_id, record) if record.get(b"account_id") else None

    async def holder(self, conversation_id: str) -> str | None:
        """The agent holding the conversation, if one does (the bot stays quiet meanwhile)."""
        value = await self._redis.hget(keys.handoff(conversation_id), "agent")
        return value.decode() if value else None

    @staticmethod
    def queue_holder(pipe: Any, conversation_id: str) -> None:
        """``holder`` queued on a pipeline (its answer: bytes or None)."""
        pipe.hget(keys.handoff(conversation_id), "agent")

    async def items(self) -> list[Item]:
        """Waiting items, most urgent and oldest first, then held ones."""
        waiting = await self._redis.zrange(keys.HANDOFF_QUEUE, 0, -1)
        held = await self._redis.zrange(keys.HANDOFF_HELD, 0, -1)
        ids = list(dict.fromkeys(c.decode() for c in waiting + held))
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(keys.handoff(conversation_id))
            records = await pipe.execute()
        found = [_item(c, r) for c, r in zip(ids, records, strict=True) if r.get(b"account_id")]
        return sorted(found, key=lambda i: (i.agent is not None, i.priority, i.since))

    async def claim(self, conversation_id: str, agent: str) -> bool:
        """Take a waiting conversation; False if someone holds it already or it is gone."""
        now = int(time.time())
        taken = await self._claim(keys=[keys.handoff(conversation_id), keys.HANDOFF_QUEUE, keys.HANDOFF_HELD],
                                  args=[conversation_id, agent, now])
        if taken == 1:
            await self._changed("claim", conversation_id, agent=agent)
        return taken == 1

    async def replied(self, conversation_id: str, now: float | None = None) -> None:
        """An agent's reply went out: the reply clocks stop (bot.domain.sla)."""
        await self._replied(keys=[keys.handoff(conversation_id)], args=[int(time.time() if now is None else now)])

    async def borrower_wrote(self, conversation_id: str, now: float | None = None) -> None:
        """A message from the borrower while a person has the conversation: the next-reply clock starts."""
        await self._wrote(keys=[keys.handoff(conversation_id)], args=[int(time.time() if now is None else now)])

    async def reassign(self, conversation_id: str, to_agent: str, by: str) -> bool:
        """A supervisor gives a held conversation to another agent."""
        moved = await self._reassign(keys=[keys.handoff(conversation_id)], args=[to_agent, int(time.time())])
        if moved:
            await self._changed("reassign", conversation_id, agent=by, to=to_agent)
        return bool(moved)

    async def hand_back(self, conversation_id: str, agent: str) -> bool:
        """The holder gives the conversation back to the bot."""
        released = await self._release(keys=[keys.handoff(conversation_id), keys.HANDOFF_HELD],
                                       args=[conversation_id, agent])
        if released:
            await self._changed("hand_back", conversation_id, agent=agent)
        return bool(released)

    async def close(self, item: Item, agent: str, outcome: str, note: str, promise: tuple[date, Decimal,
                    Decimal] | None = None) -> bool:
        """The holder closes the conversation with an outcome; its effects on the records follow.

        Args:
            promise: for outcome "promise": the day, the amount and what was paid before.

        Raises:
            ValueError: an unknown outcome, an over-long note, or a promise outcome without a promise.
        """
        check_outcome(outcome, note, promise)
        released = await self._release(keys=[keys.handoff(item.conversation_id), keys.HANDOFF_HELD],
                                       args=[item.conversation_id, agent])
        if not released:
            return False
        await self._record_outcome(item, agent, outcome, note)
        await self._apply(item, outcome, promise)
        await self._changed("close", item.conversation_id, agent=agent, outcome=outcome)
        return True

    async def _record_outcome(self, item: Item, agent: str, outcome: str, note: str) -> None:
        record = {"outcome": outcome, "at": int(time.time()), "agent": agent, "conversation": item.conversation_id,
                  "reason": item.reason, "note": note}
        async with self._redis.pipeline(transaction=True) as tx:
            tx.lpush(keys.agent_outcomes(item.account_id), self._vault.seal(record))
            tx.ltrim(keys.agent_outcomes(item.account_id), 0, OUTCOMES_KEPT - 1)
            await tx.execute()

    async def _apply(self, item: Item, outcome: str, promise: tuple[date, Decimal, Decimal] | None) -> None:
        """What an outcome changes beyond the record: a promise, a dispute hold, a wrong number."""
        if promise is not None:
            day, amount, paid_before = promise
            await self._records.promise(item.account_id, item.conversation_id, day, amount, paid_before)
        elif outcome == "dispute_opened":
            await self._redis.hset(keys.hold(item.account_id), "dispute", int(time.time()))
        elif outcome == "wrong_number":
            await self._records.flag_number(item.conversation_id, "wrong_number", stop_contact=True)

    async def outcomes(self, account_id: str, count: int = 5) -> list[dict[str, Any]]:
        """The newest outcomes on the account, notes included (for the console only)."""
        sealed = await self._redis.lrange(keys.agent_outcomes(account_id), 0, count - 1)
        return [self._vault.open(s) for s in sealed]

    async def _changed(self, event: str, conversation_id: str, **fields: str) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            audit.record(tx, event, conversation=conversation_id, **fields)
            tx.publish(keys.CONSOLE_EVENTS, console_notice("queue", conversation_id))
            await tx.execute()


def check_outcome(outcome: str, note: str, promise: object | None) -> None:
    """Raises ValueError unless the outcome is known, the note fits, and a promise comes with a promise outcome."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    if len(note) > MAX_NOTE_LENGTH:
        raise ValueError(f"the note is longer than {MAX_NOTE_LENGTH} characters")
    if (outcome == "promise") != (promise is not None):
        raise ValueError("a promise outcome needs the promised date")


def _item(conversation_id: str, record: dict[bytes, bytes]) -> Item:
    agent = record.get(b"agent")

    def moment(field: bytes) -> int | None:
        value = record.get(field)
        return int(value) if value else None

    return Item(conversation_id, record[b"account_id"].decode(), record[b"reason"].decode(),
                int(record.get(b"priority", b"3")), int(record.get(b"since", b"0")),
                agent.decode() if agent else None, moment(b"claimed_at"), moment(b"first_reply_at"),
                moment(b"waiting_since"), (record.get(b"offered_to") or b"").decode() or None)
