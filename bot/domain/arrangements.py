"""Accepted repayment plans and grace periods, and the reasons borrowers gave.

An account has at most one arrangement in good standing. Accepting one is a
single Redis transaction that re-checks, under WATCH, that no other arrangement
was accepted meanwhile and that the policy's yearly limit still allows it.

Whether an arrangement is kept is read from the ledger: the amount paid since it
was accepted must cover every instalment already due. A broken one no longer
holds reminders back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from redis.exceptions import WatchError

from bot.core import audit, keys
from bot.core.crypto import Vault
from bot.domain.ledger import Account
from bot.domain.plans import Offer

YEAR_SECONDS = 365 * 86400
REASONS = ("job_loss", "illness", "business", "family_emergency", "other")
# Offers shown to a borrower stay valid while they decide.
OFFERS_TTL_SECONDS = 30 * 60


def total_paid(account: Account) -> Decimal:
    return sum((i.amount_paid for i in account.installments), Decimal(0))


def status(record: dict[str, Any], account: Account, today: date) -> str:
    """"active", "broken" (an instalment fell due unpaid) or "completed"."""
    offer = Offer.from_record(record["offer"])
    paid_since = total_paid(account) - Decimal(record["paid_before"])
    if paid_since >= offer.total:
        return "completed"
    due_by_now = sum((i.amount for i in offer.schedule if i.due < today), Decimal(0))
    return "broken" if paid_since < due_by_now else "active"


def promise_status(record: dict[str, Any], account: Account, today: date) -> str:
    """"active" until the promised day, then "kept" or "broken" by what was paid since."""
    if "paid_before" in record:  # promises recorded before it was kept cannot be told kept
        paid_since = total_paid(account) - Decimal(record["paid_before"])
        if paid_since >= Decimal(record["amount"]):
            return "kept"
    return "active" if date.fromisoformat(record["date"]) >= today else "broken"


class ArrangementRefused(RuntimeError):
    """The arrangement could not be stored; the message says why, for the log and the agent."""


@dataclass(frozen=True)
class Arrangements:
    redis: Any
    vault: Vault

    async def current(self, account_id: str) -> dict[str, Any] | None:
        sealed = await self.redis.get(keys.arrangement(account_id))
        return self.vault.open(sealed) if sealed else None

    async def accepted_last_year(self, account_id: str, kind: str) -> int:
        return await self._count(self.redis, keys.arrangement_history(account_id), kind)

    async def accept(self, account: Account, conversation_id: str, offer: Offer, today: date, channel: str,
                     yearly_limit: int) -> dict[str, Any]:
        """Store the accepted offer, atomically with the checks that allowed it.

        Raises:
            ArrangementRefused: another arrangement is in good standing, or the yearly limit is reached.
        """
        record = {"id": uuid.uuid4().hex, "offer": offer.to_record(), "accepted_on": today.isoformat(),
                  "accepted_at": int(time.time()), "conversation": conversation_id, "channel": channel,
                  "paid_before": str(total_paid(account))}
        current_key, history_key = keys.arrangement(account.account_id), keys.arrangement_history(account.account_id)
        try:
            async with self.redis.pipeline(transaction=True) as tx:
                await tx.watch(current_key, history_key)
                sealed = await tx.get(current_key)
                if sealed and status(self.vault.open(sealed), account, today) == "active":
                    raise ArrangementRefused("an arrangement is already in good standing")
                if await self._count(tx, history_key, offer.kind) >= yearly_limit:
                    raise ArrangementRefused(f"yearly limit of {yearly_limit} {offer.kind} arrangement(s) reached")
                tx.multi()
                tx.set(current_key, self.vault.seal(record))
                tx.zadd(history_key, {f"{offer.kind}:{record['id']}": record["accepted_at"]})
                tx.delete(keys.arrangement_offers(conversation_id))
                audit.record(tx, f"{offer.kind}_accepted", at=record["accepted_at"], account_id=account.account_id,
                             conversation=conversation_id)
                await tx.execute()
        except WatchError as error:
            raise ArrangementRefused("the account changed while accepting; try again") from error
        return record

    @staticmethod
    async def _count(redis: Any, history_key: str, kind: str) -> int:
        """Arrangements of ``kind`` accepted in the last 365 days (``redis`` may be a watching pipeline)."""
        members = await redis.zrangebyscore(history_key, time.time() - YEAR_SECONDS, "+inf")
        return sum(1 for m in members if m.decode().startswith(kind + ":"))

    async def keep_offers(self, conversation_id: str, offers: list[Offer]) -> None:
        """The exact offers shown, so that "2" or "yes" accepts what the borrower saw."""
        sealed = self.vault.seal({"offers": [o.to_record() for o in offers]})
        await self.redis.set(keys.arrangement_offers(conversation_id), sealed, ex=OFFERS_TTL_SECONDS)

    async def shown_offers(self, conversation_id: str) -> list[Offer]:
        sealed = await self.redis.get(keys.arrangement_offers(conversation_id))
        return [Offer.from_record(o) for o in self.vault.open(sealed)["offers"]] if sealed else []

    async def record_reason(self, account_id: str, conversation_id: str, reason: str, text: str) -> None:
        """Keep why the borrower cannot pay (their words are personal data: sealed)."""
        if reason not in REASONS:
            raise ValueError(f"unknown hardship reason {reason!r}")
        record = {"reason": reason, "text": text, "at": int(time.time()), "conversation": conversation_id}
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(keys.hardship_reason(account_id), self.vault.seal(record))
            # The reason can be health data: it stays in the sealed record, not in the audit stream.
            audit.record(tx, "hardship_reason", at=record["at"], account_id=account_id)
            await tx.execute()

    async def reason(self, account_id: str) -> dict[str, Any] | None:
        sealed = await self.redis.get(keys.hardship_reason(account_id))
        return self.vault.open(sealed) if sealed else None
