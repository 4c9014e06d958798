"""The contact policy: may the bank contact this borrower, on this channel, now?

One module for every outbound path, asked at send time. The rules per
jurisdiction live in policy/contact.yml as named rule sets; hard stops come
from what the conversations recorded (opt-outs, disputes, paid claims,
promises, handoffs). Every decision, allowed or blocked, is written with its
reason and the name of the rule that made it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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
HOURS_COVER = ("sms", "call", "agent_reply", "visit")
# An opt-out's medium, from how it was given; every other source (said in conversation, by a
# representative, a number flagged as wrong) covers every medium.
OPT_OUT_MEDIUM = {"keyword": "sms", "call_key": "call"}
NEGATION = re.compile(r"(?<!why )(?:\bno\b|\bnot\b|\bnever\b|\bwithout\b|n't\b|\bfree of\b|不|无|免|没有|绝不)",
                      re.IGNORECASE)
NEGATION_REACH = 16  # characters before a forbidden phrase in which a negation undoes it


class RulesError(ValueError):
    """policy/contact.yml says something the code cannot enforce; the message says what."""


@dataclass(frozen=True)
class RuleSet:
    """One source's limits (a law, a standard, a guideline), from the day it is in force."""

    name: str
    in_force: date
    allowed_hours: tuple[time, time] | None = None
    hours_cover: tuple[str, ...] = HOURS_COVER
    max_unanswered_calls_per_day: int | None = None
    max_effective_conversations_per_day: int | None = None
    max_calls_in_window: int | None = None
    call_window_days: int = 7
    max_contacts_in_window: int | None = None
    contact_window_days: int = 7
    quiet_days_after_conversation: int | None = None
    opt_out_scope: str = "medium"
    identify_at_first_contact: bool = False
    forbidden_content: tuple[str, ...] = ()
    revocation_words: tuple[str, ...] = ()
    revocation_key: str | None = None

    def rule(self, name: str) -> str:
        return f"{self.name}.{name}"


@dataclass(frozen=True)
class Rules:
    """Everything policy/contact.yml says."""

    rule_sets: dict[str, RuleSet]
    jurisdictions: dict[str, tuple[str, ...]]
    prefixes: dict[str, str]
    currencies: dict[str, str]
    default: str
    institution_names: tuple[str, ...] = ()
    content: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)

    def in_force(self, jurisdictions: list[str], day: date) -> list[RuleSet]:
        """The rule sets of these jurisdictions in force on ``day``, each once, in the file's order."""
        names = dict.fromkeys(n for j in jurisdictions for n in self.jurisdictions[j])
        return [self.rule_sets[n] for n in names if self.rule_sets[n].in_force <= day]

    def revocation_key(self, jurisdictions: list[str], day: date) -> str | None:
        return next((r.revocation_key for r in self.in_force(jurisdictions, day) if r.revocation_key), None)


@dataclass(frozen=True)
class Attempt:
    """One contact attempt; ``answered``: a call in which the borrower spoke with us (an effective
    conversation)."""

    at: datetime
    channel: str
    answered: bool = False
    initiated: bool = True  # False: a reply to the borrower (an agent's answer, a link they asked for)


@dataclass(frozen=True)
class Decision:
    """Whether to contact, why in words a supervisor can read, and the rule that decided."""

    allowed: bool
    reason: str
    rule: str = ""


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


_LISTS = {"hours_cover", "forbidden_content", "revocation_words"}
_MET = {"honour_within_business_days", "confirmation"}  # met by construction: see _check_met


def _rule_set(name: str, spec: dict[str, Any], path: Path) -> RuleSet:
    spec = dict(spec)
    if spec.pop("third_parties", "never_contacted") != "never_contacted":
        raise RulesError(f"{path}: {name}: third_parties can only be never_contacted (no code contacts them)")
    for key in _MET & spec.keys():
        _check_met(name, key, spec.pop(key), path)
    values: dict[str, Any] = {k: tuple(v) if k in _LISTS else v for k, v in spec.items()}
    if "allowed_hours" in values:
        start, end = values["allowed_hours"]
        values["allowed_hours"] = (_clock(start), _clock(end))
    if values.get("opt_out_scope", "medium") not in ("medium", "all"):
        raise RulesError(f"{path}: {name}: opt_out_scope must be medium or all")
    unknown_cover = set(values.get("hours_cover", ())) - set(HOURS_COVER)
    if unknown_cover:
        raise RulesError(f"{path}: {name}: hours_cover names {sorted(unknown_cover)}; known: {HOURS_COVER}")
    try:
        return RuleSet(name=name, **values)
    except TypeError as exc:
        raise RulesError(f"{path}: {name}: {exc}") from None


def _check_met(name: str, key: str, value: Any, path: Path) -> None:
    """Limits this code meets whatever their value within reason: an opt-out takes effect on the next
    decision (0 business days) and is confirmed at most once, at once, by the reply to it."""
    if key == "honour_within_business_days" and not (isinstance(value, int) and value >= 0):
        raise RulesError(f"{path}: {name}: {key} must be a whole number of days")
    if key == "confirmation" and not (isinstance(value, dict) and value.get("max_texts", 0) >= 1
                                      and value.get("within_minutes", 0) > 0):
        raise RulesError(f"{path}: {name}: confirmation needs max_texts >= 1 and within_minutes > 0")


def load_rules(path: Path = RULES_FILE) -> Rules:
    """The rule sets, the jurisdictions made of them, and how an account is placed in one."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule_sets = {name: _rule_set(name, spec, path) for name, spec in config["rule_sets"].items()}
    jurisdictions = {str(j): tuple(names) for j, names in config["jurisdictions"].items()}
    content = {name: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
               for name, patterns in config.get("content", {}).items()}
    rules = Rules(rule_sets, jurisdictions, {str(p): str(j) for p, j in config["by_phone_prefix"].items()},
                  {str(c): str(j) for c, j in config["by_currency"].items()}, str(config["default"]),
                  tuple(config.get("institution_names", ())), content)
    _check_names(rules, path)
    return rules


def _check_names(rules: Rules, path: Path) -> None:
    named = set(rules.prefixes.values()) | set(rules.currencies.values()) | {rules.default}
    if named - set(rules.jurisdictions):
        raise RulesError(f"{path}: jurisdiction {sorted(named - set(rules.jurisdictions))} has no rule sets")
    sets = {n for names in rules.jurisdictions.values() for n in names}
    if sets - set(rules.rule_sets):
        raise RulesError(f"{path}: rule set {sorted(sets - set(rules.rule_sets))} is not defined")
    contents = {c for r in rules.rule_sets.values() for c in r.forbidden_content}
    if contents - set(rules.content):
        raise RulesError(f"{path}: forbidden_content {sorted(contents - set(rules.content))} has no patterns")
    if any(r.identify_at_first_contact for r in rules.rule_sets.values()) and not rules.institution_names:
        raise RulesError(f"{path}: identify_at_first_contact needs institution_names")


# --- the rules themselves: pure functions of time, history and the message ---------------------------


@dataclass(frozen=True)
class Situation:
    """What a decision looks at besides the rules.

    ``opt_out``: the medium of an opt-out on record (sms, call or all), if any; ``stops``: the other
    hard stops, as (rule, reason); ``body``: the text about to be sent, when it is an SMS.
    """

    now: datetime
    zone: str
    channel: str
    purpose: str = "reminder"
    attempts: tuple[Attempt, ...] = ()
    stops: tuple[tuple[str, str], ...] = ()
    opt_out: tuple[str, str] | None = None  # (medium, source)
    body: str | None = None

    @property
    def covered(self) -> str:
        """What the hours rules know this as: a channel, or an agent's reply."""
        return "agent_reply" if self.purpose == "agent_reply" else self.channel


def check_hours(rules: RuleSet, now: datetime, zone: str, medium: str = "sms") -> Decision:
    """Only inside the allowed local hours (DST handled by the zone database)."""
    if rules.allowed_hours is None or medium not in rules.hours_cover:
        return Decision(True, "no hours rule", rules.rule("allowed_hours"))
    start, end = rules.allowed_hours
    local = now.astimezone(ZoneInfo(zone))
    window = f"{start:%H:%M}-{end:%H:%M}"
    if start <= local.time() < end:
        return Decision(True, f"inside allowed hours {window}", rules.rule("allowed_hours"))
    return Decision(False, f"outside allowed hours {window} (borrower's local time {local:%H:%M} {zone})",
                    rules.rule("allowed_hours"))


def check_calls(rules: RuleSet, now: datetime, zone: str, attempts: list[Attempt] | tuple[Attempt, ...]
                ) -> Decision:
    """Call frequency: unanswered calls and effective conversations per local day, calls per window,
    quiet days after a conversation."""
    calls = [a for a in attempts if a.channel == "call" and a.at <= now]
    today = now.astimezone(ZoneInfo(zone)).date()
    calls_today = [a for a in calls if a.at.astimezone(ZoneInfo(zone)).date() == today]
    limit = rules.max_unanswered_calls_per_day
    unanswered = sum(not a.answered for a in calls_today)
    if limit is not None and unanswered >= limit:
        return Decision(False, f"{unanswered} unanswered calls already today (limit {limit})",
                        rules.rule("max_unanswered_calls_per_day"))
    limit = rules.max_effective_conversations_per_day
    talks = sum(a.answered for a in calls_today)
    if limit is not None and talks >= limit:
        return Decision(False, f"{talks} phone conversations with the borrower already today (limit {limit})",
                        rules.rule("max_effective_conversations_per_day"))
    if rules.max_calls_in_window is not None:
        since = now - timedelta(days=rules.call_window_days)
        recent = sum(a.at > since for a in calls)
        if recent >= rules.max_calls_in_window:
            return Decision(False, f"{recent} calls in the last {rules.call_window_days} days "
                                   f"(limit {rules.max_calls_in_window})", rules.rule("max_calls_in_window"))
    if rules.quiet_days_after_conversation is not None:
        since = now - timedelta(days=rules.quiet_days_after_conversation)
        spoken = [a.at for a in calls if a.answered and a.at > since]
        if spoken:
            return Decision(False, f"spoke with the borrower by phone on {max(spoken):%Y-%m-%d}; no calls for "
                                   f"{rules.quiet_days_after_conversation} days after a conversation",
                            rules.rule("quiet_days_after_conversation"))
    return Decision(True, "within call limits", rules.rule("calls"))


def check_contacts(rules: RuleSet, now: datetime, attempts: list[Attempt] | tuple[Attempt, ...]) -> Decision:
    """Contacts we started by any medium, per account, in a window (replies to the borrower not counted)."""
    limit = rules.max_contacts_in_window
    if limit is None:
        return Decision(True, "no contact cap", rules.rule("max_contacts_in_window"))
    since = now - timedelta(days=rules.contact_window_days)
    recent = sum(since < a.at <= now and a.initiated for a in attempts)
    if recent >= limit:
        return Decision(False, f"{recent} contacts by any medium in the last {rules.contact_window_days} days "
                               f"(limit {limit} per account)", rules.rule("max_contacts_in_window"))
    return Decision(True, "within the contact cap", rules.rule("max_contacts_in_window"))


def check_opt_out(rule_sets: list[RuleSet], channel: str, opt_out: tuple[str, str] | None) -> Decision | None:
    """An opt-out stops its own medium; under a rule set with opt_out_scope "all", every medium."""
    if opt_out is None:
        return None
    medium, source = opt_out
    if medium in ("all", channel):
        return Decision(False, f"opted out ({source})", "opt_out")
    wider = next((r for r in rule_sets if r.opt_out_scope == "all"), None)
    if wider is not None:
        return Decision(False, f"opted out ({source}); an opt-out covers every medium here",
                        wider.rule("opt_out_scope"))
    return None


def forbidden(text: str, patterns: tuple[re.Pattern[str], ...]) -> str | None:
    """The first phrase of ``text`` a pattern finds that no negation just before undoes."""
    for pattern in patterns:
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - NEGATION_REACH):match.start()]
            if not NEGATION.search(before):
                return match.group(0)
    return None


def check_content(rules: Rules, rule_set: RuleSet, body: str) -> Decision | None:
    for name in rule_set.forbidden_content:
        phrase = forbidden(body, rules.content[name])
        if phrase is not None:
            return Decision(False, f"the message says {phrase!r}, which {rule_set.name} forbids ({name})",
                            rule_set.rule(f"forbidden_content.{name}"))
    return None


def check_identification(rules: Rules, rule_set: RuleSet, situation: Situation) -> Decision | None:
    """A first contact we start by SMS names the institution (a call's opening always does: gateway)."""
    first = not any(a.at <= situation.now for a in situation.attempts)
    unsolicited = situation.purpose in ("reminder", "visit_reminder")
    if not (rule_set.identify_at_first_contact and first and unsolicited and situation.body is not None):
        return None
    if any(name.lower() in situation.body.lower() for name in rules.institution_names):
        return None
    return Decision(False, f"a first contact must name the bank ({' / '.join(rules.institution_names)})",
                    rule_set.rule("identify_at_first_contact"))


def evaluate(rules: Rules, rule_sets: list[RuleSet], situation: Situation) -> Decision:
    """The whole decision: hard stops and opt-outs first, then each rule set's hours, frequency, message."""
    if situation.channel not in CHANNELS:
        raise ValueError(f"unknown channel {situation.channel!r}")
    opted_out = check_opt_out(rule_sets, situation.channel, situation.opt_out)
    stops = ([(opted_out.rule, opted_out.reason)] if opted_out else []) + list(situation.stops)
    if stops:  # every one of them is said: each must be lifted before contact resumes
        return Decision(False, "; ".join(reason for _, reason in stops), stops[0][0])
    allowed = []
    for rule_set in rule_sets:
        for decision in _checks(rules, rule_set, situation):
            if not decision.allowed:
                return decision
            allowed.append(decision)
    hours = next((d.reason for d in allowed if d.reason.startswith("inside")), "no hours rule")
    calls = ", within call limits" if situation.channel == "call" else ""
    return Decision(True, f"allowed: {hours}{calls}", "+".join(r.name for r in rule_sets))


def _checks(rules: Rules, rule_set: RuleSet, situation: Situation) -> list[Decision]:
    found = [check_hours(rule_set, situation.now, situation.zone, situation.covered)]
    if situation.purpose != "agent_reply":
        found.append(check_contacts(rule_set, situation.now, situation.attempts))
        if situation.channel == "call":
            found.append(check_calls(rule_set, situation.now, situation.zone, situation.attempts))
    if situation.body is not None:
        found += [d for d in (check_content(rules, rule_set, situation.body),
                              check_identification(rules, rule_set, situation)) if d is not None]
    return found


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
        self.rules = load_rules(path)

    def jurisdictions(self, account: Account) -> list[str]:
        """The jurisdictions that apply: the phone number's area's and the loan currency's."""
        rules = self.rules
        matching = [p for p in rules.prefixes if account.phone.startswith(p)]
        found = [rules.prefixes[max(matching, key=len)]] if matching else []
        found += [rules.currencies[account.currency]] if account.currency in rules.currencies else []
        return sorted(set(found)) or [rules.default]

    def rule_sets(self, account: Account, day: date) -> list[RuleSet]:
        """The rule sets in force on the borrower's ``day`` (empty when a jurisdiction has none)."""
        jurisdictions = self.jurisdictions(account)
        if any(not self.rules.in_force([j], day) for j in jurisdictions):
            return []
        return self.rules.in_force(jurisdictions, day)

    async def decide(self, account: Account, channel: str, now: datetime | None = None,
                     purpose: str = "reminder", record: bool = True, body: str | None = None) -> Decision:
        """Decide for this account and channel now, and record the decision with its reason and rule.

        Args:
            purpose: "reminder" (about the debt), "visit_reminder" (about a visit the
                borrower booked, which arrangements and bookings do not hold back) or
                "agent_reply" (an agent answering in a handed-off conversation: opt-outs,
                hours and what a message may say apply; holds, arrangements and caps do not).
            record: False for a preview (a campaign's dry run): nothing is written.
            body: the SMS about to be sent, checked for what no message may say.
        """
        now = now or datetime.now(ZoneInfo("UTC"))
        today = now.astimezone(ZoneInfo(account.timezone)).date()
        rule_sets = self.rule_sets(account, today)
        if not rule_sets:
            decision = Decision(False, f"no contact rules in force for {'+'.join(self.jurisdictions(account))} "
                                       f"on {today.isoformat()}", "none_in_force")
        else:
            situation = Situation(now, account.timezone, channel, purpose, tuple(await self.attempts(
                account.account_id, now=now)), tuple(await self.stops(account, today, purpose)),
                await self.opt_out(account), body)
            decision = evaluate(self.rules, rule_sets, situation)
        return await self.record(account, channel, now, decision) if record else decision

    def visit_allowed(self, account: Account, start: datetime, end: datetime) -> Decision:
        """A visit is collection too: it starts and ends inside every rule set's hours that cover visits."""
        for rule_set in self.rule_sets(account, start.astimezone(ZoneInfo(account.timezone)).date()):
            for moment in (start, end - timedelta(minutes=1)):
                hours = check_hours(rule_set, moment, account.timezone, "visit")
                if not hours.allowed:
                    return hours
        return Decision(True, "visit inside allowed hours", "visit")

    async def record(self, account: Account, channel: str, now: datetime, decision: Decision) -> Decision:
        """Write a decision with its reason and rule to the decisions stream."""
        await self._redis.xadd(keys.CONTACT_DECISIONS, {
            "account_id": account.account_id, "channel": channel,
            "jurisdiction": "+".join(self.jurisdictions(account)), "allowed": int(decision.allowed),
            "reason": decision.reason, "rule": decision.rule, "at": int(now.timestamp()),
        })
        return decision

    async def opt_out(self, account: Account) -> tuple[str, str] | None:
        """The opt-out on record for this borrower's number, as (medium, source)."""
        record = await self._redis.hgetall(keys.opt_out(pseudonym(account.phone, self._secret)))
        source = record.get(b"source", b"").decode()
        return (OPT_OUT_MEDIUM.get(source, "all"), source) if source else None

    async def stops(self, account: Account, today: date, purpose: str = "reminder") -> list[tuple[str, str]]:
        """Everything else recorded that stops contact until a person lifts it (or an arrangement ends),
        as (rule, reason)."""
        if purpose == "agent_reply":  # a person answering the borrower's own messages
            return []
        conversation = pseudonym(account.phone, self._secret)
        holds = {k.decode() for k in await self._redis.hkeys(keys.hold(account.account_id))}
        stops = [(f"hold.{h}", f"{_HOLD_WORDS.get(h, h)} under review") for h in sorted(holds)]
        if await self._redis.exists(keys.handoff(conversation)):
            stops.append(("handoff", "the conversation is with an agent"))
        if purpose == "reminder":
            stops += await self._arrangement_stops(account, today)
        return stops

    async def hard_stops(self, account: Account, channel: str, today: date, purpose: str = "reminder") -> list[str]:
        """The reasons of every hard stop for this channel: an opt-out that covers it, holds, arrangements."""
        opted_out = check_opt_out(self.rule_sets(account, today), channel, await self.opt_out(account))
        found = [opted_out.reason] if opted_out else []
        return found + [reason for _, reason in await self.stops(account, today, purpose)]

    async def _arrangement_stops(self, account: Account, today: date) -> list[tuple[str, str]]:
        """A promise not yet due, a plan or grace period being kept, a visit still to come."""
        stops = []
        promise = await self._records.get_promise(account.account_id)
        if promise and promise_status(promise, account, today) == "active":
            stops.append(("arrangement.promise", f"promise to pay by {promise['date']} not yet due"))
        arrangement = await self._arrangements.current(account.account_id)
        if arrangement and status(arrangement, account, today) == "active":
            kind = arrangement["offer"]["kind"]
            stops.append((f"arrangement.{kind}", f"{kind} arrangement in good standing"))
        booking = await self._bookings.booking_for(account.account_id)
        visit_day = booking.slot.start.date() if booking else None
        if visit_day and visit_day >= today:
            stops.append(("arrangement.visit", f"verification visit booked for {visit_day.isoformat()}"))
        return stops

    async def attempts(self, account_id: str, days: int = 8, now: datetime | None = None) -> list[Attempt]:
        """Contact attempts of the ``days`` days before ``now``, oldest first."""
        since = (now or datetime.now(ZoneInfo("UTC"))).timestamp() - days * 86400
        ids = await self._redis.zrangebyscore(keys.contact_attempt_times(account_id), since, "+inf")
        records = await self._redis.hmget(keys.contact_attempts(account_id), ids) if ids else []
        return [_attempt(json.loads(r)) for r in records if r]

    async def record_attempt(self, account_id: str, attempt_id: str, attempt: Attempt) -> None:
        """Store or update an attempt (a call later answered, say); one ``attempt_id``, one attempt."""
        record = json.dumps({"at": attempt.at.timestamp(), "channel": attempt.channel, "answered": attempt.answered,
                             "initiated": attempt.initiated})
        async with self._redis.pipeline(transaction=True) as tx:
            tx.hset(keys.contact_attempts(account_id), attempt_id, record)
            tx.zadd(keys.contact_attempt_times(account_id), {attempt_id: attempt.at.timestamp()})
            for key in (keys.contact_attempts(account_id), keys.contact_attempt_times(account_id)):
                tx.expire(key, self._attempts_kept)
            await tx.execute()


_HOLD_WORDS = {"dispute": "a dispute", "already_paid": "a claim of payment"}


def _attempt(record: dict[str, Any]) -> Attempt:
    return Attempt(at=datetime.fromtimestamp(record["at"], ZoneInfo("UTC")), channel=record["channel"],
                   answered=bool(record["answered"]), initiated=bool(record.get("initiated", True)))
