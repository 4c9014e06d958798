"""Reminder campaigns: a collection list, or a segment of it, turned into contacts per strategy.

Contacts run as jobs of arq, on as many worker processes (and machines) as share the Redis.
Why arq: it is asyncio-native, like the Sender and the twilio library's async client; it
keeps its queue in Redis, our only store; a job id is taken once, so re-planning a campaign
or re-enqueueing a job never duplicates it; deferred jobs give "call if there is no reply
within N minutes"; a job whose worker dies is run again once its in-progress mark expires;
and it is maintained. (rq forks a process per job and is synchronous; Celery needs a broker
and result backend of its own.)

Per strategy: ``gentle_sms``, ``hardship_offer`` and ``visit_proposal`` send one SMS;
``sms_then_call`` sends an SMS and, ``reply_wait`` later, places a call only if the borrower
has not replied since; ``agent_review`` contacts nobody and queues the account for agents.
Every SMS and call goes through the Sender, so the contact policy decides at send time.

Nothing is sent twice: each contact has an outbox key ``campaign:<id>:<account>:<kind>:<day>``
(the day the campaign was planned), taken once. A job rerun after its worker was killed
frees a key still marked "pending" (the request never left) and reports a key marked
"sending" as ``uncertain``: the one window that cannot be closed is a worker killed after
Twilio accepted a message and before the sid was recorded. Such a contact is not sent again;
``campaign status`` counts it for a person to check in Twilio's console.

Throughput: a per-sender-number rate (messages a second, shared by every worker through a
Redis counter per second) and a daily cap per sender number.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis.exceptions import LockError
from twilio.base.exceptions import TwilioRestException

from bot.contact.outbound import DELIVERED, NOT_DELIVERED, Sender, Sent
from bot.contact.policy import Decision
from bot.core import catalog, keys
from bot.core.crypto import pseudonym
from bot.core.settings import CampaignConfig
from bot.domain.ledger import Account, RowError
from bot.screening.priority import STRATEGIES as STRATEGY_NAMES
from bot.screening.priority import cell_text
from bot.services import Services

JOB = "campaign_contact"
REQUIRED_COLUMNS = ("account_id", "bucket", "days_past_due", "strategy", "priority")
# What each strategy does, in order; a "call" runs reply_wait after its SMS, if nobody replied.
# The names are screening's (the strategies its rules may choose); any not listed here sends one SMS.
_STEPS: dict[str, tuple[str, ...]] = {"sms_then_call": ("sms", "call"), "agent_review": ("review",)}
STRATEGIES: dict[str, tuple[str, ...]] = {name: _STEPS.get(name, ("sms",)) for name in STRATEGY_NAMES}
TEMPLATES = {"gentle_sms": "utter_campaign_gentle", "sms_then_call": "utter_campaign_call_notice",
             "hardship_offer": "utter_campaign_hardship", "visit_proposal": "utter_campaign_visit"}
# A contact in one of these states is not attempted again (a "blocked" one is, on re-planning).
DONE = {"sent", "failed", "skipped", "handed_off", "uncertain"}


# --- the list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One row of the collection list that the campaign takes."""

    account_id: str
    bucket: str
    days_past_due: int
    strategy: str
    priority: float


class CampaignListError(ValueError):
    """The list was rejected; ``errors`` names every bad line. Nothing was planned."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the collection list; nothing was planned")
        self.errors = errors


def read_list(path: Path, segment: Mapping[str, set[str]] | None = None) -> list[Target]:
    """The list's rows that fall in ``segment`` (column -> allowed values), most urgent first.

    Raises:
        CampaignListError: a missing column, a segment on an unknown column, a bad value or a
            repeated account, each with its line.
    """
    name = path.name
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in (*REQUIRED_COLUMNS, *(segment or {})) if c not in header]
    if missing:
        raise CampaignListError([RowError(name, 1, ",".join(missing),
                                          f"header lacks column(s); it needs {','.join(REQUIRED_COLUMNS)} "
                                          "and every column a segment names")])
    errors: list[RowError] = []
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            target = _target(row)
        except _Bad as bad:
            errors.append(RowError(name, line, bad.column, str(bad)))
            continue
        if target.account_id in seen:
            errors.append(RowError(name, line, "account_id", f"repeats line {seen[target.account_id]}"))
            continue
        seen[target.account_id] = line
        if all(cell_text(row.get(column) or "") in values for column, values in (segment or {}).items()):
            targets.append(target)
    if errors:
        raise CampaignListError(errors)
    return sorted(targets, key=lambda t: (-t.priority, t.account_id))


class _Bad(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _target(row: dict[str, str]) -> Target:
    values = {c: cell_text(row.get(c) or "") for c in REQUIRED_COLUMNS}
    if not values["account_id"]:
        raise _Bad("account_id", "is empty")
    if values["strategy"] not in STRATEGIES:
        raise _Bad("strategy", f"{values['strategy']!r} is not one of {', '.join(STRATEGIES)}")
    if not values["days_past_due"].lstrip("-").isdigit():
        raise _Bad("days_past_due", "must be a whole number")
    try:
        priority = float(values["priority"])
    except ValueError:
        raise _Bad("priority", "must be a number (higher is more urgent)") from None
    if not math.isfinite(priority):
        raise _Bad("priority", "must be a finite number")
    return Target(values["account_id"], values["bucket"], int(values["days_past_due"]), values["strategy"], priority)


def parse_segment(specs: list[str]) -> dict[str, set[str]]:
    """``["strategy=a,b", "bucket=31-60"]`` -> ``{"strategy": {"a", "b"}, "bucket": {"31-60"}}``."""
    segment: dict[str, set[str]] = {}
    for spec in specs:
        column, sep, values = spec.partition("=")
        if not sep or not column.strip() or not values.strip():
            raise ValueError(f"segment {spec!r} must look like column=value[,value...]")
        segment.setdefault(column.strip(), set()).update(v.strip() for v in values.split(",") if v.strip())
    return segment


# --- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    """A planned campaign: its id, and the contacts planned per strategy."""

    campaign_id: str
    name: str
    day: str
    created: int
    counts: dict[str, int]
    enqueued: int


def campaign_id(name: str, day: str, list_bytes: bytes, segment: Mapping[str, set[str]] | None) -> str:
    """The same name, day, list and segment give the same id, so planning twice changes nothing."""
    spec = json.dumps({k: sorted(v) for k, v in (segment or {}).items()}, sort_keys=True)
    digest = hashlib.sha256(b"\0".join([name.encode(), day.encode(), hashlib.sha256(list_bytes).digest(),
                                        spec.encode()]))
    return digest.hexdigest()[:16]


def job_id(campaign: str, account_id: str, kind: str, day: str) -> str:
    return f"campaign:{campaign}:{account_id}:{kind}:{day}"


async def plan_campaign(services: Services, list_csv: Path, segment: Mapping[str, set[str]] | None,
                        name: str | None, queue: Any, now: datetime | None = None) -> Campaign:
    """Store the campaign and its contacts, and enqueue one job per account on ``queue`` (an ArqRedis).

    Contacts already done are left as they are; jobs already queued are not queued again.

    Raises:
        CampaignListError: the list is malformed; nothing was stored.
    """
    now = now or datetime.now(ZoneInfo("UTC"))
    targets = read_list(list_csv, segment)
    day = now.date().isoformat()
    name = name or f"{list_csv.stem} {day}"
    cid = campaign_id(name, day, list_csv.read_bytes(), segment)
    redis = services.redis
    counts = Counter(t.strategy for t in targets)
    meta = {"campaign_id": cid, "name": name, "day": day, "list": list_csv.name,
            "segment": json.dumps({k: sorted(v) for k, v in (segment or {}).items()}),
            "accounts": len(targets), "counts": json.dumps(dict(counts))}
    contacts = {f"{t.account_id}:{kind}": json.dumps({"state": "planned", "strategy": t.strategy,
                                                      "priority": t.priority})
                for t in targets for kind in STRATEGIES[t.strategy]}
    created = int(now.timestamp())
    async with redis.pipeline(transaction=True) as tx:
        tx.hset(keys.campaign(cid), mapping=meta)
        tx.hsetnx(keys.campaign(cid), "created", created)
        tx.zadd(keys.CAMPAIGNS, {cid: created}, nx=True)
        await tx.execute()
    items = list(contacts.items())
    for start in range(0, len(items), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for field_name, record in items[start:start + 1000]:
                pipe.hsetnx(keys.campaign_contacts(cid), field_name, record)
            await pipe.execute()
    enqueued = 0
    for start in range(0, len(targets), 500):  # in priority order, a batch at a time
        jobs = await asyncio.gather(*[
            queue.enqueue_job(JOB, cid, t.account_id, STRATEGIES[t.strategy][0], day,
                              _job_id=job_id(cid, t.account_id, STRATEGIES[t.strategy][0], day))
            for t in targets[start:start + 500]])
        enqueued += sum(j is not None for j in jobs)
    stored = await redis.hget(keys.campaign(cid), "created")
    return Campaign(cid, name, day, int(stored), dict(counts), enqueued)


@dataclass(frozen=True)
class Preview:
    """One contact a campaign would make: when, by which channel, why, and the policy's answer now."""

    target: Target
    channel: str
    when: str
    decision: Decision | None


async def preview_campaign(services: Services, list_csv: Path, segment: Mapping[str, set[str]] | None,
                           config: CampaignConfig, now: datetime | None = None) -> list[Preview]:
    """A dry run: the contacts ``plan_campaign`` would schedule; nothing is stored, sent or enqueued."""
    now = now or datetime.now(ZoneInfo("UTC"))
    previews = []
    wait = int(config.reply_wait.total_seconds() // 60)
    for target in read_list(list_csv, segment):
        account = await services.ledger.get(target.account_id)
        for kind in STRATEGIES[target.strategy]:
            when = {"sms": "now", "call": f"{wait} min after the SMS, if no reply",
                    "review": "now, to the agents' queue"}[kind]
            decision = None
            if account is None:
                decision = Decision(False, "not in the ledger: will be skipped")
            elif kind != "review":
                body = _body(services, target.strategy, account) if kind == "sms" else None
                decision = await services.policy.decide(account, kind, now, record=False, body=body)
            previews.append(Preview(target, kind, when, decision))
    return previews


def _body(services: Services, strategy: str, account: Account, responses: dict[str, Any] | None = None) -> str:
    return catalog.render(responses or catalog.responses(), TEMPLATES[strategy], account.language,
                          bank_phone=services.settings.bank_phone)


def with_rule(reason: str, rule: str) -> str:
    """A blocked contact's reason as campaign status counts it: the words, then the rule that decided."""
    return f"{reason} [{rule}]" if rule else reason


# --- throughput -------------------------------------------------------------------------------


class RateLimiter:
    """At most ``per_second`` slots per clock second for one sender number, across every worker.

    Each second has its own Redis counter; a caller that finds its second full waits for the
    next one. ``clock`` and ``sleep`` are parameters so tests can check adherence exactly.
    """

    def __init__(self, redis: Any, sender: str, per_second: int, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._redis = redis
        self._sender = sender
        self._per_second = per_second
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch second it belongs to (0 when unlimited)."""
        if self._per_second <= 0:
            return 0
        while True:
            second = int(self._clock())
            async with self._redis.pipeline(transaction=True) as tx:
                tx.incr(keys.campaign_rate(self._sender, second))
                tx.expire(keys.campaign_rate(self._sender, second), 5)
                taken, _ = await tx.execute()
            if taken <= self._per_second:
                if int(self._clock()) == second:
                    return second
                continue  # the second ended while we asked: that slot goes unused
            await self._sleep(max(0.0, second + 1 - self._clock()))


class DailyCap:
    """At most ``cap`` messages and calls per sender number and UTC day (0: no cap)."""

    def __init__(self, redis: Any, sender: str, cap: int, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._sender = sender
        self._cap = cap
        self._clock = clock

    def _key(self) -> str:
        return keys.campaign_daily(self._sender, datetime.fromtimestamp(self._clock(), ZoneInfo("UTC")).date()
                                   .isoformat())

    async def reserve(self) -> bool:
        """Take one from today's allowance; False (and nothing taken) when it is used up."""
        if self._cap <= 0:
            return True
        key = self._key()
        async with self._redis.pipeline(transaction=True) as tx:
            tx.incr(key)
            tx.expire(key, 2 * 86400)
            taken, _ = await tx.execute()
        if taken > self._cap:
            await self._redis.decr(key)
            return False
        return True

    async def release(self) -> None:
        """Give back a reservation that was not used (the policy blocked the contact, say)."""
        if self._cap > 0:
            await self._redis.decr(self._key())

    def seconds_to_tomorrow(self) -> float:
        now = self._clock()
        return 86400 - now % 86400 + 1


# --- running contacts --------------------------------------------------------------------------


class TryLater(Exception):  # noqa: N818 - a request to the queue, not an error
    """Run this job again in ``seconds`` (a daily cap reached, a lock held, Twilio rate-limiting)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass
class Runner:
    """What a worker does for one job: one contact of one account in one campaign."""

    services: Services
    sender: Sender
    queue: Any  # an ArqRedis, to enqueue follow-up calls
    config: CampaignConfig
    responses: dict[str, Any] = field(default_factory=catalog.responses)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.cap = DailyCap(self.services.redis, self.services.settings.twilio_from, self.config.daily_cap,
                            self.clock)

    async def run(self, cid: str, account_id: str, kind: str, day: str, job_try: int = 1) -> str:
        """Make the contact unless it was made; returns its state."""
        store = self.services.redis
        name = f"{account_id}:{kind}"
        raw = await store.hget(keys.campaign_contacts(cid), name)
        if raw is None:
            return "skipped"  # the campaign was deleted
        record = json.loads(raw)
        if record["state"] in DONE:
            if (kind, record["state"]) == ("sms", "sent"):
                await self._follow_up(cid, account_id, record, day)
            return str(record["state"])
        account = await self.services.ledger.get(account_id)
        if account is None:
            return await self._save(cid, name, record, "skipped", "not in the ledger")
        if kind == "review":
            conversation = pseudonym(account.phone, self.services.settings.hmac_secret)
            await self.services.records.hand_off(conversation, account_id, "campaign_review")
            return await self._save(cid, name, record, "handed_off", "queued for an agent's review")
        if kind == "call":
            sms = json.loads(await store.hget(keys.campaign_contacts(cid), f"{account_id}:sms") or "{}")
            replied = int(await store.get(keys.last_reply(account_id)) or 0)
            if sms.get("at") and replied >= sms["at"]:
                return await self._save(cid, name, record, "skipped", "replied after the SMS")
        outbox_key = job_id(cid, account_id, kind, day)
        if job_try > 1 and await store.get(keys.outbox(outbox_key)) == b"pending":
            await store.delete(keys.outbox(outbox_key))  # the last try died before any request left
        return await self._send(cid, name, record, account, kind, outbox_key, day)

    async def _send(self, cid: str, name: str, record: dict[str, Any], account: Account, kind: str,
                    outbox_key: str, day: str) -> str:
        if not await self.cap.reserve():
            await self._save(cid, name, record, "planned", "waiting: the daily cap is used up")
            raise TryLater(self.cap.seconds_to_tomorrow(), "daily cap reached")
        try:
            sent = await self._attempt(account, kind, outbox_key, record)
        except TwilioRestException as exc:
            await self.cap.release()
            if exc.status == 429:
                raise TryLater(30, "Twilio is rate-limiting") from None
            return await self._save(cid, name, record, "failed", f"Twilio refused it: error {exc.code}")
        except LockError:
            await self.cap.release()
            raise TryLater(5, "another worker holds the account") from None
        except Exception as exc:
            if await self.services.redis.get(keys.outbox(outbox_key)) == b"uncertain":  # Twilio may have it
                return await self._save(cid, name, record, "uncertain", f"no answer from Twilio ({type(exc).__name__})")
            await self.cap.release()
            raise TryLater(5, f"{type(exc).__name__} before sending") from exc
        if sent.outcome == "duplicate":
            await self.cap.release()
            taken = (await self.services.redis.get(keys.outbox(outbox_key)) or b"").decode()
            if taken.startswith(("SM", "CA")):
                sent = Sent("queued", "sent by an earlier try", taken)
            else:
                return await self._save(cid, name, record, "uncertain",
                                        "a worker stopped while sending; check Twilio's log")
        if sent.outcome == "blocked":
            await self.cap.release()
            return await self._save(cid, name, record, "blocked", with_rule(sent.reason, sent.rule))
        record["sid"] = sent.sid
        state = await self._save(cid, name, record, "sent", sent.reason)
        if kind == "sms":
            await self._follow_up(cid, account.account_id, record, day)
        return state

    async def _attempt(self, account: Account, kind: str, outbox_key: str, record: dict[str, Any]) -> Sent:
        if kind == "call":
            return await self.sender.call(account, outbox_key)
        return await self.sender.sms(account, _body(self.services, record["strategy"], account, self.responses),
                                     outbox_key)

    async def _follow_up(self, cid: str, account_id: str, record: dict[str, Any], day: str) -> None:
        """Queue the call of an SMS-then-call contact, once, ``reply_wait`` after the SMS."""
        if "call" not in STRATEGIES[record["strategy"]]:
            return
        due = datetime.fromtimestamp(record["at"], ZoneInfo("UTC")) + self.config.reply_wait
        await self.queue.enqueue_job(JOB, cid, account_id, "call", day, _job_id=job_id(cid, account_id, "call", day),
                                     _defer_until=due)

    async def _save(self, cid: str, name: str, record: dict[str, Any], state: str, reason: str) -> str:
        record.update(state=state, reason=reason, at=int(self.clock()))
        await self.services.redis.hset(keys.campaign_contacts(cid), name, json.dumps(record))
        return state


# --- progress ----------------------------------------------------------------------------------


async def campaign_status(services: Services, cid: str) -> dict[str, Any]:
    """Progress: planned, sent, delivered, failed, blocked (per reason), skipped, replies, ...

    Delivery is read from the contact attempts the status callbacks keep current, so a callback
    that arrives before the worker recorded its send is still counted.

    Raises:
        KeyError: no such campaign.
    """
    redis = services.redis
    meta = {k.decode(): v.decode() for k, v in (await redis.hgetall(keys.campaign(cid))).items()}
    if not meta:
        raise KeyError(cid)
    records = {k.decode(): json.loads(v) for k, v in (await redis.hgetall(keys.campaign_contacts(cid))).items()}
    states = Counter(r["state"] for r in records.values())
    blocked = Counter(r["reason"] for r in records.values() if r["state"] == "blocked")
    sent = [(name, r) for name, r in records.items() if r["state"] == "sent"]
    delivery: Counter[str] = Counter()
    replies = 0
    for start in range(0, len(sent), 5000):
        chunk = sent[start:start + 5000]
        async with redis.pipeline(transaction=False) as pipe:
            for _, r in chunk:
                pipe.hget(keys.contact_status(r["sid"]), "status")
            for name, _ in chunk:
                pipe.get(keys.last_reply(name.rsplit(":", 1)[0]))
            answers = await pipe.execute()
        delivery.update((s or b"unknown").decode() for s in answers[:len(chunk)])
        replies += sum(name.endswith(":sms") and int(reply or 0) >= r["at"]
                       for (name, r), reply in zip(chunk, answers[len(chunk):], strict=True))
    return {
        "campaign_id": cid, "name": meta["name"], "day": meta["day"], "list": meta["list"],
        "segment": json.loads(meta["segment"]), "created": int(meta["created"]),
        "accounts": int(meta["accounts"]), "by_strategy": json.loads(meta["counts"]),
        "planned": len(records), "waiting": states["planned"], "sent": states["sent"],
        "delivered": sum(n for s, n in delivery.items() if s in DELIVERED),
        "failed": states["failed"] + sum(n for s, n in delivery.items() if s in NOT_DELIVERED),
        "blocked": {"total": states["blocked"], "by_reason": dict(blocked.most_common())},
        "skipped": states["skipped"], "handed_off": states["handed_off"], "uncertain": states["uncertain"],
        "replies": replies,
    }


async def list_campaigns(services: Services) -> list[dict[str, Any]]:
    """Every campaign, newest first: id, name, day, accounts."""
    ids = [i.decode() for i in await services.redis.zrevrange(keys.CAMPAIGNS, 0, -1)]
    found = []
    for cid in ids:
        meta = await services.redis.hmget(keys.campaign(cid), ["name", "day", "accounts"])
        found.append({"campaign_id": cid, "name": (meta[0] or b"").decode(), "day": (meta[1] or b"").decode(),
                      "accounts": int(meta[2] or 0)})
    return found
