"""What conversations leave behind: opt-outs, holds, promises, claims, handoffs.

Each write is one Redis transaction; records holding personal data are sealed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

import redis

from bot.core import audit, keys
from bot.core.crypto import Vault

HANDOFF_REASONS = (
    "request_human", "complaint", "dispute", "fallback", "verification_failed", "already_paid",
    "request_plan", "request_extension", "hardship", "visit", "campaign_review",
)
# Reasons that also stop outbound reminders until a person lifts the hold.
HOLDING_REASONS = {"dispute", "already_paid"}
_PRIORITY = {"complaint": 1, "dispute": 1, "verification_failed": 2, "already_paid": 2}
# Failed verification locks disclosure for a day; so does a third party or a wrong number on the line.
LOCK_SECONDS = 24 * 3600


# KEYS: item, queue. ARGV: conversation, now, account, reason, priority. One step, so that an agent
# letting go at the same moment cannot leave an item that is neither waiting nor held.
_QUEUE = """
redis.call('HSETNX', KEYS[1], 'since', ARGV[2])
redis.call('HSET', KEYS[1], 'account_id', ARGV[3], 'reason', ARGV[4], 'priority', ARGV[5])
if redis.call('HEXISTS', KEYS[1], 'agent') == 0 then redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1]) end
"""


# What every action reads about its turn, in one round trip. KEYS: the account by pseudonym, the chosen
# language, the disclosure block. ARGV: the prefixes of account records and of failed verifications.
_FOR_TURN = """
local account_id = redis.call('GET', KEYS[1])
if not account_id then return false end
return {redis.call('GET', ARGV[1] .. account_id), redis.call('GET', KEYS[2]),
        redis.call('GET', ARGV[2] .. account_id), redis.call('EXISTS', KEYS[3])}
"""


def console_notice(kind: str, conversation_id: str) -> str:
    """A notice for live console pages: which conversation changed and how; the page fetches the rest."""
    return json.dumps({"type": kind, "conversation": conversation_id})


@dataclass(frozen=True)
class Records:
    """Writes the records a conversation produces."""

    redis: Any
    vault: Vault

    async def _audit(self, tx: Any, event: str, **fields: str) -> None:
        audit.record(tx, event, **fields)

    async def opt_out(self, conversation_id: str, source: str) -> None:
        """Stop outbound contact to this number until the borrower opts back in."""
        async with self.redis.pipeline(transaction=True) as tx:
            tx.hset(keys.opt_out(conversation_id), mapping={"source": source, "at": int(time.time())})
            await self._audit(tx, "opt_out", conversation=conversation_id, source=source)
            await tx.execute()

    async def opt_in(self, conversation_id: str) -> bool:
        """Lift an SMS-keyword opt-out; other opt-outs need a person. True if lifted."""
        source = await self.redis.hget(keys.opt_out(conversation_id), "source")
        if source != b"keyword":
            return False
        async with self.redis.pipeline(transaction=True) as tx:
            tx.delete(keys.opt_out(conversation_id))
            await self._audit(tx, "opt_in", conversation=conversation_id)
            await tx.execute()
        return True

    async def is_opted_out(self, conversation_id: str) -> bool:
        return bool(await self.redis.exists(keys.opt_out(conversation_id)))

    async def hand_off(self, conversation_id: str, account_id: str, reason: str) -> None:
        """Queue the conversation for an agent; a conversation is queued once."""
        if reason not in HANDOFF_REASONS:
            raise ValueError(f"unknown handoff reason {reason!r}")
        now = int(time.time())
        await self.redis.eval(_QUEUE, 2, keys.handoff(conversation_id), keys.HANDOFF_QUEUE, conversation_id, now,
                              account_id, reason, _PRIORITY.get(reason, 3))
        async with self.redis.pipeline(transaction=True) as tx:
            if reason in HOLDING_REASONS:
                tx.hset(keys.hold(account_id), reason, now)
            await self._audit(tx, "handoff", conversation=conversation_id, reason=reason)
            tx.publish(keys.CONSOLE_EVENTS, console_notice("queue", conversation_id))
            await tx.execute()

    async def flag_number(self, conversation_id: str, reason: str, stop_contact: bool) -> None:
        """Put a number up for review (wrong number, third party), optionally stopping contact."""
        async with self.redis.pipeline(transaction=True) as tx:
            tx.zadd(keys.REVIEW_NUMBERS, {conversation_id: int(time.time())})
            if stop_contact:
                tx.hset(keys.opt_out(conversation_id), mapping={"source": reason, "at": int(time.time())})
            await self._audit(tx, "flag_number", conversation=conversation_id, reason=reason)
            await tx.execute()

    async def promise(self, account_id: str, conversation_id: str, due: date, amount: Decimal,
                      paid_before: Decimal = Decimal(0), changed: bool = False) -> None:
        """Store the borrower's promise to pay (the newest replaces the last).

        ``paid_before`` is what the ledger showed paid when the promise was made,
        so that what is paid after it tells whether the promise was kept. ``changed``: the
        borrower moved the promise they had just made ("actually make it the 20th").
        """
        record = {"date": due.isoformat(), "amount": str(amount), "made_at": int(time.time()),
                  "conversation": conversation_id, "paid_before": str(paid_before)}
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(keys.promise(account_id), self.vault.seal(record))
            await self._audit(tx, "promise_changed" if changed else "promise", account_id=account_id)
            await tx.execute()

    async def withdraw_promise(self, account_id: str, conversation_id: str) -> bool:
        """Remove the promise this conversation made (the borrower says they never made it).

        The promise is sealed, so Redis cannot compare its conversation itself: the key is watched, and a
        promise stored meanwhile by another conversation makes the removal start again.

        Returns:
            False when the account's promise is not this conversation's (nothing is removed).
        """
        key = keys.promise(account_id)
        async with self.redis.pipeline(transaction=True) as tx:
            while True:
                try:
                    await tx.watch(key)
                    sealed = await tx.get(key)
                    if not sealed or self.vault.open(sealed).get("conversation") != conversation_id:
                        await tx.unwatch()
                        return False
                    tx.multi()
                    tx.delete(key)
                    await self._audit(tx, "promise_withdrawn", account_id=account_id, reason="borrower_correction")
                    await tx.execute()
                    return True
                except redis.WatchError:
                    continue

    async def get_promise(self, account_id: str) -> dict[str, Any] | None:
        sealed = await self.redis.get(keys.promise(account_id))
        return self.vault.open(sealed) if sealed else None

    async def paid_claim(self, account_id: str, conversation_id: str) -> None:
        """Record an "I already paid" claim; reminders hold until an agent checks it."""
        async with self.redis.pipeline(transaction=True) as tx:
            tx.hsetnx(keys.paid_claim(account_id), "at", int(time.time()))
            await self._audit(tx, "paid_claim", account_id=account_id)
            await tx.execute()
        await self.hand_off(conversation_id, account_id, "already_paid")

    async def verification_failures(self, account_id: str) -> int:
        """Failed verification attempts on the account in the last day, across conversations."""
        return int(await self.redis.get(keys.verification_failures(account_id)) or 0)

    async def verification_failed(self, account_id: str) -> int:
        """Count one more failed attempt; returns the new count."""
        async with self.redis.pipeline(transaction=True) as tx:
            tx.incr(keys.verification_failures(account_id))
            tx.expire(keys.verification_failures(account_id), LOCK_SECONDS)
            await self._audit(tx, "verification_failed", account_id=account_id)
            count, _, _ = await tx.execute()
        return int(count)

    async def verification_passed(self, account_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as tx:
            tx.delete(keys.verification_failures(account_id))
            await self._audit(tx, "verification_passed", account_id=account_id)
            await tx.execute()

    async def block_disclosure(self, conversation_id: str, reason: str) -> None:
        """Someone other than the borrower is on this number: disclose nothing for a day."""
        await self.redis.set(keys.disclosure_block(conversation_id), reason, ex=LOCK_SECONDS)

    async def disclosure_blocked(self, conversation_id: str) -> bool:
        return bool(await self.redis.exists(keys.disclosure_block(conversation_id)))

    async def set_language(self, conversation_id: str, language: str) -> None:
        """Remember the language the borrower asked for, beyond this session."""
        await self.redis.set(keys.language(conversation_id), language)

    async def language(self, conversation_id: str) -> str | None:
        value = await self.redis.get(keys.language(conversation_id))
        return value.decode() if value else None

    @staticmethod
    def queue_language(pipe: Any, conversation_id: str) -> None:
        """``language`` queued on a pipeline (its answer: bytes or None)."""
        pipe.get(keys.language(conversation_id))

    async def for_turn(self, conversation_id: str) -> tuple[bytes, str | None, int, bool] | None:
        """What every action asks, in one round trip: the account of the conversation's number (sealed, as
        the ledger stores it: ``Ledger.account_from`` opens it), the language the borrower chose, the
        account's failed verifications and whether disclosure is blocked. None if the number has no account."""
        found = await self._for_turn(keys=[keys.account_by_pseudonym(conversation_id), keys.language(conversation_id),
                                           keys.disclosure_block(conversation_id)],
                                     args=[keys.account(""), keys.verification_failures("")])
        if not found or not found[0]:
            return None
        sealed, language, failures, blocked = found
        return sealed, (language.decode() if language else None), int(failures or 0), bool(blocked)

    @cached_property
    def _for_turn(self) -> Any:
        return self.redis.register_script(_FOR_TURN)
