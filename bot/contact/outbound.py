"""Outbound SMS and calls through the twilio library's async client, within the contact policy.

Every send asks the contact policy at send time, is taken once per outbox key
(a retry or a second worker is a no-op), retries Twilio's 429 with backoff,
and leaves a contact attempt whose status the status callbacks keep current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.contact.policy import Attempt, ContactPolicy, Decision
from bot.contact.sms import MAX_SEGMENTS, segments
from bot.core import keys
from bot.core.settings import Settings
from bot.domain.ledger import Account

log = logging.getLogger(__name__)

RATE_LIMITED = 429
OUTBOX_TTL_SECONDS = 3 * 24 * 3600


@dataclass(frozen=True)
class Sent:
    """What became of a send: ``queued`` (Twilio took it), ``blocked`` or ``duplicate``."""

    outcome: str
    reason: str
    sid: str | None = None
    rule: str = ""


def twilio_client(settings: Settings) -> Client:
    """The twilio library's client on its aiohttp-based HTTP client; call inside a running loop."""
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=AsyncTwilioHttpClient())
    client.api.base_url = settings.twilio_api_base_url
    return client


class Sender:
    """Sends SMS and places calls for accounts, one outbox key at a time."""

    def __init__(self, client: Client, settings: Settings, policy: ContactPolicy, redis: Any,
                 retries: int = 4, backoff_seconds: float = 0.5,
                 clock: Callable[[], datetime] = lambda: datetime.now(ZoneInfo("UTC")),
                 lock_seconds: float = 60, throttle: Callable[[], Awaitable[Any]] | None = None) -> None:
        """``throttle``, if given, is awaited right before each request to Twilio (a campaign's rate limit)."""
        self._client = client
        self._lock_seconds = lock_seconds
        self._throttle = throttle
        self._clock = clock
        self._settings = settings
        self._policy = policy
        self._redis = redis
        self._retries = retries
        self._backoff = backoff_seconds

    async def sms(self, account: Account, body: str, outbox_key: str, requested: bool = False,
                  purpose: str = "reminder") -> Sent:
        """Send one SMS, if the policy allows it now.

        Args:
            purpose: what the policy is asked about (see ContactPolicy.decide).
            requested: the borrower asked for it in a live conversation (a payment
                link during a call): a reply, not an unsolicited contact, so only
                recorded, not checked against hours and hard stops.

        Raises:
            ValueError: the body needs more than three SMS segments.
        """
        needed = segments(body)
        if needed > MAX_SEGMENTS:
            raise ValueError(f"SMS body needs {needed} segments; the limit is {MAX_SEGMENTS}")
        status_callback = self._settings.public_base_url + "/twilio/status"
        return await self._send(account, "sms", outbox_key, lambda: self._client.messages.create_async(
            to=account.phone, from_=self._settings.twilio_from, body=body, status_callback=status_callback),
            requested, purpose, body)

    async def call(self, account: Account, outbox_key: str) -> Sent:
        """Place one call, answered by /twilio/voice, with answering-machine detection."""
        base = self._settings.public_base_url
        return await self._send(account, "call", outbox_key, lambda: self._client.calls.create_async(
            to=account.phone, from_=self._settings.twilio_from, url=base + "/twilio/voice",
            status_callback=base + "/twilio/status", machine_detection="DetectMessageEnd",
            record=self._settings.call_recording))

    async def _send(self, account: Account, channel: str, outbox_key: str,
                    create: Callable[[], Awaitable[Any]], requested: bool = False,
                    purpose: str = "reminder", body: str | None = None) -> Sent:
        if not await self._redis.set(keys.outbox(outbox_key), "pending", nx=True, ex=OUTBOX_TTL_SECONDS):
            return Sent("duplicate", f"outbox key {outbox_key} was already taken")
        try:
            # One account's decision and its recorded attempt are one step: two workers must not
            # both see "5 calls today" and place the 6th and 7th.
            async with self._redis.lock(keys.outbound_lock(account.account_id), timeout=self._lock_seconds,
                                        blocking_timeout=self._lock_seconds / 2):
                now = self._clock()
                if requested:
                    decision = await self._policy.record(account, channel, now,
                                                         Decision(True, "requested by the borrower", "requested"))
                else:
                    decision = await self._policy.decide(account, channel, now, purpose, body=body)
                if not decision.allowed:
                    await self._redis.delete(keys.outbox(outbox_key))
                    return Sent("blocked", decision.reason, rule=decision.rule)
                created = await self._create_once(create, outbox_key)
                initiated = not requested and purpose != "agent_reply"
                await self._record(account, channel, outbox_key, created.sid, created.status, now, initiated)
        except BaseException:
            # Still "pending": nothing left (the lock timed out, the policy failed, stopped while
            # throttled). Free the key, or a retry would find it taken for three days.
            if await self._redis.get(keys.outbox(outbox_key)) == b"pending":
                await self._redis.delete(keys.outbox(outbox_key))
            raise
        return Sent("queued", decision.reason, created.sid, decision.rule)

    async def _create_once(self, create: Callable[[], Awaitable[Any]], outbox_key: str) -> Any:
        """Create the message or call; free the outbox key only when Twilio surely refused it.

        The key reads "pending" until the request may leave and "sending" from then on, so a
        job rerun after its worker died can tell "never sent" from "maybe sent".
        """
        try:
            return await self._with_backoff(create, outbox_key)
        except TwilioRestException:
            await self._redis.delete(keys.outbox(outbox_key))  # refused: a later run may take it
            raise
        except BaseException:
            # No answer: Twilio may have taken it. Keep the key so nothing is sent twice.
            # (Stopped while still throttled, the key still reads "pending": _send frees it.)
            if await self._redis.get(keys.outbox(outbox_key)) == b"sending":
                await self._redis.set(keys.outbox(outbox_key), "uncertain", ex=OUTBOX_TTL_SECONDS)
            raise

    async def _with_backoff(self, create: Callable[[], Awaitable[Any]], outbox_key: str) -> Any:
        for attempt in range(self._retries + 1):
            if self._throttle is not None:
                await self._throttle()
            await self._redis.set(keys.outbox(outbox_key), "sending", ex=OUTBOX_TTL_SECONDS)
            try:
                return await create()
            except TwilioRestException as exc:
                if exc.status != RATE_LIMITED or attempt == self._retries:
                    raise
                delay = self._backoff * 2**attempt
                log.warning("twilio rate limit (20429); retrying in %.1f s", delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _record(self, account: Account, channel: str, outbox_key: str, sid: str, status: str,
                      now: datetime, initiated: bool) -> None:
        async with self._redis.pipeline(transaction=True) as tx:
            tx.set(keys.outbox(outbox_key), sid, ex=OUTBOX_TTL_SECONDS)
            tx.hset(keys.contact_status(sid), mapping={"account_id": account.account_id, "channel": channel,
                                                       "status": status, "at": int(now.timestamp())})
            tx.expire(keys.contact_status(sid), 90 * 86400)
            await tx.execute()
        await self._policy.record_attempt(account.account_id, sid, Attempt(now, channel, initiated=initiated))


# Twilio's final statuses of a message or call, as reached and as not.
DELIVERED = frozenset({"delivered", "read", "completed"})
NOT_DELIVERED = frozenset({"failed", "undelivered", "busy", "no-answer", "canceled"})
# Statuses a message or call does not leave: a late "sent" must not undo "delivered".
FINAL_STATUSES = frozenset(status.encode() for status in DELIVERED | NOT_DELIVERED)


async def record_status(redis: Any, policy: ContactPolicy, form: Any) -> bool:
    """Apply a Twilio status callback to its contact attempt; False if the sid is not ours."""
    sid = form.get("MessageSid") or form.get("CallSid") or ""
    status = form.get("MessageStatus") or form.get("CallStatus") or ""
    known = await redis.hgetall(keys.contact_status(sid))
    if not known:
        return False
    if known.get(b"status") in FINAL_STATUSES and status.encode() not in FINAL_STATUSES:
        return True
    update = {"status": status, "updated": int(time.time())}
    if form.get("ErrorCode"):
        update["error_code"] = form["ErrorCode"]
    await redis.hset(keys.contact_status(sid), mapping=update)
    if known[b"channel"] == b"call" and status == "completed" and form.get("AnsweredBy", "human") == "human":
        at = datetime.fromtimestamp(int(known[b"at"]), ZoneInfo("UTC"))
        await policy.record_attempt(known[b"account_id"].decode(), sid, Attempt(at, "call", answered=True))
    return True
