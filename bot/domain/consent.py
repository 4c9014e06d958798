"""Consents on record: to keep a family contact, to record a visit address.

A consent record holds who agreed (account and conversation), when, on which
channel, for what purpose, and the exact wording they were shown with its
version. Nothing a consent covers is stored without a granted consent, and a
withdrawal deletes what it covered. Every change also goes to the audit stream.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from bot.core import audit, keys
from bot.core.crypto import Vault, mask_phone

PURPOSES = ("family_contact", "visit_address")

_CN_MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d[\s-]?\d{4}[\s-]?\d{4})(?!\d)")
_E164 = re.compile(r"\+[1-9][\d\s().-]{7,18}\d")
_US_PHONE = re.compile(r"(?<!\d)(?:1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})(?!\d)")


def wording_version(response: str, wording: str) -> str:
    return f"{response}#{hashlib.sha256(wording.encode()).hexdigest()[:12]}"


class ConsentMissing(RuntimeError):
    """Something a consent must cover was about to be stored without one."""


@dataclass(frozen=True)
class FamilyContact:
    phone: str
    description: str  # the rest of what the borrower wrote: "my wife Mei Li", "我妈 王秀英"

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


def read_phone(text: str) -> tuple[str, str] | None:
    """An E.164 phone number in the text and the text without it, or None."""
    for pattern, to_e164 in ((_E164, _digits_e164), (_CN_MOBILE, _cn_e164), (_US_PHONE, _us_e164)):
        found = pattern.search(text)
        if found:
            rest = (text[:found.start()] + " " + text[found.end():]).strip(" ,，:：;；-")
            return to_e164(found), " ".join(rest.split())
    return None


def _digits_e164(found: re.Match[str]) -> str:
    return "+" + re.sub(r"\D", "", found.group(0))


def _cn_e164(found: re.Match[str]) -> str:
    return "+86" + re.sub(r"\D", "", found.group(1))


def _us_e164(found: re.Match[str]) -> str:
    return "+1" + "".join(found.groups())


@dataclass(frozen=True)
class Consents:
    """Consent records per account and purpose, and the family contact they allow."""

    redis: Any
    vault: Vault

    async def get(self, account_id: str, purpose: str) -> dict[str, Any] | None:
        sealed = await self.redis.hget(keys.consent(account_id), purpose)
        return self.vault.open(sealed) if sealed else None

    async def record(self, account_id: str, purpose: str, status: str, conversation_id: str, channel: str,
                     wording: str, response: str) -> dict[str, Any]:
        """Record a grant or a refusal, with the exact wording the borrower answered.

        Args:
            wording: the text shown, as rendered for the borrower.
            response: the domain response it came from; with a digest of the text it is
                the wording's version, so an edited wording is a new version by itself.
        """
        if purpose not in PURPOSES or status not in ("granted", "declined"):
            raise ValueError(f"unknown consent {purpose!r}/{status!r}")
        record = {"purpose": purpose, "status": status, "at": int(time.time()), "channel": channel,
                  "conversation": conversation_id, "wording_version": wording_version(response, wording),
                  "wording": wording}
        await self._write(account_id, purpose, record, f"consent_{status}")
        return record

    async def withdraw(self, account_id: str, purpose: str, conversation_id: str, channel: str) -> bool:
        """Withdraw a granted consent and delete what it covered; False if none was granted."""
        record = await self.get(account_id, purpose)
        if not record or record["status"] != "granted":
            return False
        record = {**record, "status": "withdrawn", "withdrawn_at": int(time.time()),
                  "withdrawn_channel": channel, "withdrawn_conversation": conversation_id}
        await self._write(account_id, purpose, record, "consent_withdrawn",
                          delete=keys.family_contact(account_id) if purpose == "family_contact" else None)
        return True

    async def _write(self, account_id: str, purpose: str, record: dict[str, Any], event: str,
                     delete: str | None = None) -> None:
        async with self.redis.pipeline(transaction=True) as tx:
            tx.hset(keys.consent(account_id), purpose, self.vault.seal(record))
            if delete:
                tx.delete(delete)
            audit.record(tx, event, account_id=account_id, purpose=purpose,
                         wording_version=record["wording_version"])
            await tx.execute()

    async def save_family_contact(self, account_id: str, contact: FamilyContact) -> None:
        """Store the contact, only under a granted consent (checked in the same transaction)."""
        async with self.redis.pipeline(transaction=True) as tx:
            await tx.watch(keys.consent(account_id))
            sealed = await tx.hget(keys.consent(account_id), "family_contact")
            if not sealed or self.vault.open(sealed)["status"] != "granted":
                raise ConsentMissing("no granted family-contact consent")
            tx.multi()
            tx.set(keys.family_contact(account_id),
                   self.vault.seal({"phone": contact.phone, "description": contact.description,
                                    "at": int(time.time())}))
            audit.record(tx, "family_contact_saved", account_id=account_id)
            await tx.execute()

    async def family_contact(self, account_id: str) -> FamilyContact | None:
        sealed = await self.redis.get(keys.family_contact(account_id))
        if not sealed:
            return None
        record = self.vault.open(sealed)
        return FamilyContact(record["phone"], record["description"])
