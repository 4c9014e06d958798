"""The contact policy: may the bank contact this borrower, on this channel, now?

One module for every outbound path, asked at send time. The rules per
jurisdiction live in policy/contact.yml; hard stops come from what the
conversations recorded (opt-outs, disputes, paid claims, promises, handoffs).
Every decision, allowed or blocked, is written with its reason.
"""

from __future__ import annotations

import json
import time as clock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.core import keys
from bot.core.crypto import Vault, pseudonym
from bot.domain.arrangements import Arrangements, promise_status, status
from bot.domain.booking import Bookings, load_field_teams
from bot.domain.ledger import Account
from bot.domain.records import Records

RULES_FILE = Path(__file__).resolve().parents[2] / "policy" / "contact.yml"
CHANNELS = ("sms", "call")


@dataclass(frozen=True)
class Rules:
    """One jurisdiction's limits."""

    allowed_from: time
    allowed_until: time
    max_unanswered_calls_per_day: int | None = None
    max_calls_in_window: int | None = None
    call_window_days: int = 7
    quiet_days_after_conversation: int | None = None


@dataclass(frozen=True)
class Attempt:
    """One outbound contact attempt; ``answered`` means a call reached the borrower."""

    at: datetime
    channel: str
    answered: bool = False


@dataclass(frozen=True)
class Decision:
    """Whether to contact, and why, in words a supervisor can read."""

    allowed: bool
    reason: str


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def load_rules(path: Path = RULES_FILE) -> tuple[dict[str, Rules], dict[str, str], dict[str, str], str]:
    """Rules per jurisdiction, phone prefixes and currencies to jurisdictions, and the default."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = {}
    for name, spec in config["jurisdictions"].items():
        start, end = spec.pop("allowed_hours")
        rules[name] = Rules(allowed_from=_clock(start), allowed_until=_clock(end), **spec)
    prefixes = {str(prefix): str(name) for prefix, name in config["by_phone_prefix"].items()}
    currencies = {str(code): str(name) for code, name in config["by_currency"].items()}
    if config["default"] not in rules or (set(prefixes.values()) | set(currencies.values())) - set(rules):
        raise ValueError(f"{path}: a jurisdiction is named that has no rules")
    return rules, prefixes, currencies, str(config["default"])


# --- the rules themselves: pure functions of time and history -------------------------------


def check_hours(rules: Rules, now: datetime, zone: str) -> Decision:
    """Only inside the allowed local hours (DST handled by the zone database)."""
    local = now.astimezone(ZoneInfo(zone))
    window = f"{rules.allowed_from:%H:%M}-{rules.allowed_until:%H:%M}"
    if rules.allowed_from <= local.time() < rules.allowed_until:
        return Decision(True, f"inside allowed hours {window}")
    return Decision(False, f"outside allowed hours {window} (borrower's local time {local:%H:%M} {zone})")


def check_calls(rules: Rules, now: datetime, zone: str, attempts: list[Attempt]) -> Decision:
    """Call frequency: unanswered calls per local day, calls per window, quiet days after a conversation."""
    calls = [a for a in attempts if a.channel == "call" and a.at <= now]
    if rules.max_unanswered_calls_per_day is not None:
        today = now.astimezone(ZoneInfo(zone)).date()
        unanswered = sum(not a.answered and a.at.astimezone(ZoneInfo(zone)).date() == today for a in calls)
        if unanswered >= rules.max_unanswered_calls_per_day:
            return Decision(False, f"{unanswered} unanswered calls already today "
                                   f"(limit {rules.max_unanswered_calls_per_day})")
    if rules.max_calls_in_window is not None:
        since = now - timedelta(days=rules.call_window_days)
        recent = sum(a.at > since for a in calls)
        if recent >= rules.max_calls_in_window:
            return Decision(False, f"{recent} calls in the last {rules.call_window_days} days "
                                   f"(limit {rules.max_calls_in_window})")
    if rules.quiet_days_after_conversation is not None:
        since = now - timedelta(days=rules.quiet_days_after_conversation)
        talks = [a.at for a in calls if a.answered and a.at > since]
        if talks:
            return Decision(False, f"spoke with the borrower by phone on {max(talks):%Y-%m-%d}; no calls for "
                                   f"{rules.quiet_days_after_conversation} days after a conversation")
    return Decision(True, "within call limits")


def evaluate(rules: Rules, now: datetime, zone: str, channel: str, attempts: list[Attempt],
             stops: list[str]) -> Decision:
    """The whole decision: hard stops first, then hours, then call frequency."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if stops:
        return Decision(False, "; ".join(stops))
    hours = check_hours(rules, now, zone)
    if not hours.allowed:
        return hours
    if channel == "call":
        calls = check_calls(rules, now, zone, attempts)
        if not calls.allowed:
            return calls
    return Decision(True, f"allowed: {hours.reason}" + (", within call limits" if channel == "call" else ""))


# --- the policy over the records in Redis ----------------------------------------------------


class ContactPolicy:
    """Decides and records outbound contact for accounts."""

    def __init__(self, redis: Any, vault: Vault, hmac_secret: bytes, path: Path = RULES_FILE,
                 bookings: Bookings | None = None, attempts_kept_days: int = 30) -> None:
        self._redis = redis
        self._attempts_kept = attempts_kept_days * 86400
        self._bookings = bookings or Bookings(redis, vault, load_field_teams())
        self._records = Records(redis, vault)
        self._arrangements = Arrangements(redis, vault)
        self._secret = hmac_secret
        self._rules, self._prefixes, self._currencies, self._default = load_rules(path)

    def jurisdictions(self, account: Account) -> list[str]:
        """The rule sets that apply: the phone number's country's and the loan currency's."""
        matching = [p for p in self._prefixes if account.phone.startswith(p)]
        found = [self._prefixes[max(matching, key=len)]] if matching else []
        found += [self._currencies[account.currency]] if account.currency in self._currencies else []
        return sorted(set(found)) or [self._default]

    async def decide(self, account: Account, channel: str, now: datetime | None = None,
                     purpose: str = "reminder", record: bool = True) -> Decision:
        """Decide for this account and channel now, and record the decision with its reason.

        Args:
            purpose: "reminder" (about the debt), "visit_reminder" (about a visit the
                borrower booked, which arrangements and bookings do not hold back) or
                "agent_reply" (an agent answering in a handed-off conversation: opt-outs
                and hours apply, holds and arrangements do not).
            record: False for a preview (a campaign's dry run): nothing is written.
        """
        now = now or datetime.now(ZoneInfo("UTC"))
        today = now.astimezone(ZoneInfo(account.timezone)).date()
        attempts = await self.attempts(account.account_id)
        stops = await self.hard_stops(account, channel, today, purpose)
        decisions = [evaluate(self._rules[j], now, account.timezone, channel, attempts, stops)
                     for j in self.jurisdictions(account)]
        blocked = [d for d in decisions if not d.allowed]
        decision = blocked[0] if blocked else decisions[0]
        return await self.record(account, channel, now, decision) if record else decision

    async def record(self, account: Account, channel: str, now: datetime, decision: Decision) -> Decision:
        """Write a decision with its reason to the decisions stream."""
        await self._redis.xadd(keys.CONTACT_DECISIONS, {
            "account_id": account.account_id, "channel": channel,
            "jurisdiction": "+".join(self.jurisdictions(account)),
            "allowed": int(decision.allowed), "reason": decision.reason, "at": int(now.timestamp()),
        })
        return decision

    async def hard_stops(self, account: Account, channel: str, today: date, purpose: str = "reminder") -> list[str]:
        """Everything recorded that stops contact until a person lifts it (or an arrangement ends)."""
        conversation = pseudonym(account.phone, self._secret)
        stops = []
        opt_out = await self._redis.hgetall(keys.opt_out(conversation))
        source = opt_out.get(b"source", b"").decode()
        if source and (source != "keyword" or channel == "sms"):
            stops.append(f"opted out ({source})")
        if purpose == "agent_reply":  # a person answering the borrower's own messages: only an opt-out stops it
            return stops
        holds = {k.decode() for k in await self._redis.hkeys(keys.hold(account.account_id))}
        stops += [f"{_HOLD_WORDS.get(h, h)} under review" for h in sorted(holds)]
        if await self._redis.exists(keys.handoff(conversation)):
            stops.append("the conversation is with an agent")
        if purpose == "reminder":
            stops += await self._arrangement_stops(account, today)
        return stops

    async def _arrangement_stops(self, account: Account, today: date) -> list[str]:
        """A promise not yet due, a plan or grace period being kept, a visit still to come."""
        stops = []
        promise = await self._records.get_promise(account.account_id)
        if promise and promise_status(promise, account, today) == "active":
            stops.append(f"promise to pay by {promise['date']} not yet due")
        arrangement = await self._arrangements.current(account.account_id)
        if arrangement and status(arrangement, account, today) == "active":
            stops.append(f"{arrangement['offer']['kind']} arrangement in good standing")
        booking = await self._bookings.booking_for(account.account_id)
        visit_day = booking.slot.start.date() if booking else None
        if visit_day and visit_day >= today:
            stops.append(f"verification visit booked for {visit_day.isoformat()}")
        return stops

    async def attempts(self, account_id: str, days: int = 8) -> list[Attempt]:
        """Contact attempts of the last ``days`` days, oldest first."""
        since = clock.time() - days * 86400
        ids = await self._redis.zrangebyscore(keys.contact_attempt_times(account_id), since, "+inf")
        records = await self._redis.hmget(keys.contact_attempts(account_id), ids) if ids else []
        return [_attempt(json.loads(r)) for r in records if r]

    async def record_attempt(self, account_id: str, attempt_id: str, attempt: Attempt) -> None:
        """Store or update an attempt (a call later answered, say); one ``attempt_id``, one attempt."""
        record = json.dumps({"at": attempt.at.timestamp(), "channel": attempt.channel, "answered": attempt.answered})
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(keys.contact_attempts(account_id), attempt_id, record)
            tx.zadd(keys.contact_attempt_times(account_id), {attempt_id: attempt.at.timestamp()})
            for key in (keys.contact_attempts(account_id), keys.contact_attempt_times(account_id)):
                tx.expire(key, self._attempts_kept)
            await tx.execute()


_HOLD_WORDS = {"dispute": "a dispute", "already_paid": "a claim of payment"}


def _attempt(record: dict[str, Any]) -> Attempt:
    return Attempt(at=datetime.fromtimestamp(record["at"], ZoneInfo("UTC")), channel=record["channel"],
                   answered=bool(record["answered"]))
