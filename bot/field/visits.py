"""The field visit record: arrival and consent, the checklist, the interview, the outcome.

Field staff fill it on a phone during a booked visit (bot/console/field.py). It starts as a
draft, saved as the visitor goes; submitting makes it final, and any later correction is an
addendum. Nothing of the checklist or interview may be recorded before the staff have shown
their ID, said why they came, and the borrower has agreed to the visit and to their entering,
with at least two staff named as present (the 2026 guideline).

A visit is one Redis hash per booking: its state and version in the clear (no personal data),
the record sealed. Every change is a Lua check-and-set on the state and version, so a submitted
record cannot be overwritten and two phones saving the same draft cannot silently undo each other.

The record (JSON, sealed), as bot/field/report.py reads it::

    booking     the booking as it stood when the visit began (Booking.to_record())
    arrival     {result: "consented", id_shown, purpose_stated, visit_agreed, entry_agreed: true,
                 staff_present: [staff ids], at, by}; absent until recorded. A visit that could not go
                 ahead has result "refused" or "not_home" and no confirmations.
    ledger      {scheduled, term, instalment, overdue}: the ledger's figures on the visit day, kept at
                 arrival so that later payments do not rewrite what the visitors saw
    checklist   {item: {result, note}} for item in CHECKLIST, result in RESULTS
    contract    {amount, annual_rate: decimal strings or "", term_months: int or None}: read off the contract
    income_proof {stamp: "yes" | "no" | "", signer}
    interview   {field: text} for field in INTERVIEW; willingness in WILLINGNESS, ability in ABILITY
    outcome     {code, amount, date (ISO), months (int or None), next_step}: code in OUTCOMES, the rest as
                 the code needs
    updated_at, updated_by, submitted_at, submitted_by

Times (``at``, ``*_at``) are Unix seconds; ``by`` is the officer's staff id, or a supervisor's username.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from multidict import MultiMapping

from bot.core import audit, keys
from bot.core.crypto import Vault
from bot.domain.booking import Booking
from bot.domain.ledger import Account, overdue

ARRIVAL_CHECKS = ("id_shown", "purpose_stated", "visit_agreed", "entry_agreed")
NOT_WENT_AHEAD = ("refused", "not_home")
CHECKLIST = ("id_card", "household_register", "marriage_certificate", "loan_contract", "income_proof",
             "asset_proof")
RESULTS = ("matches", "discrepancy", "not_available")
INTERVIEW = ("occupation", "employer", "family_members", "monthly_income", "monthly_expenses",
             "delinquency_reason", "willingness", "ability", "summary")
WILLINGNESS = ("willing", "hesitant", "unwilling")
ABILITY = ("full", "partial", "none")
OUTCOMES = ("paid_on_spot", "plan", "promise", "follow_up_visit", "legal_review")
# Outcomes that need the borrower met and consenting; a visit that did not go ahead can only lead
# to another visit or to legal review.
OUTCOMES_AFTER_ENTRY = ("paid_on_spot", "plan", "promise")
MIN_STAFF_PRESENT = 2
MAX_NOTE = 1000
MAX_ADDENDUM = 2000
MAX_PLAN_MONTHS = 60
MAX_FOLLOW_UP_DAYS = 90
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")
_RATE = re.compile(r"\d{1,2}(\.\d{1,4})?")
WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")  # ASCII only: str.isdigit() also takes "²", which int() refuses


class VisitError(ValueError):
    """The form or the step is refused; ``problems`` name each field and why (shown to the visitor)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StaleVisit(Exception):
    """The record changed since the page was loaded (another phone saved), or it was submitted."""


@dataclass
class Visit:
    """One visit's record and where it stands."""

    booking_id: str
    state: str  # "new", "draft" or "submitted"
    version: int
    record: dict[str, Any]
    addenda: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = False  # a submitted visit's outcome applied and its reports written

    @property
    def booking(self) -> Booking:
        return Booking.from_record(self.record["booking"])

    @property
    def consented(self) -> bool:
        """Whether the checklist may be filled: every arrival check confirmed by two staff or more."""
        arrival = self.record.get("arrival") or {}
        confirmed = all(arrival.get(check) is True for check in ARRIVAL_CHECKS)
        return arrival.get("result") == "consented" and confirmed and (
            len(arrival.get("staff_present", [])) >= MIN_STAFF_PRESENT)

    @property
    def went_ahead(self) -> bool | None:
        """True once consented, False if refused or nobody was home, None before arrival."""
        arrival = self.record.get("arrival")
        if not arrival:
            return None
        return self.consented

    def staff_ids(self) -> set[str]:
        return {s["staff_id"] for s in self.record["booking"]["staff"]}


# --- reading forms -----------------------------------------------------------------------------


def read_arrival(form: MultiMapping[Any], booking: Booking) -> dict[str, Any]:
    """The arrival step: the four confirmations and the staff present, or why the visit did not go ahead.

    Raises:
        VisitError: an unknown staff id, fewer than two staff, or a confirmation missing.
    """
    result = form.get("result", "")
    if result not in ("consented", *NOT_WENT_AHEAD):
        raise VisitError(["result: say whether the borrower agreed, refused, or was not home"])
    staff = {s.staff_id for s in booking.staff}
    present = [str(s) for s in form.getall("staff_present", [])]
    problems = [] if result in NOT_WENT_AHEAD else [
        f"{check}: must be confirmed before the checklist" for check in ARRIVAL_CHECKS if form.get(check) != "yes"]
    if any(s not in staff for s in present):
        problems.append("staff_present: only the staff booked on this visit can be named")
    if len(set(present)) < MIN_STAFF_PRESENT:
        problems.append(f"staff_present: at least {MIN_STAFF_PRESENT} staff must be named as present")
    if problems:
        raise VisitError(problems)
    confirmed = {check: True for check in ARRIVAL_CHECKS} if result == "consented" else {}
    return {"result": result, **confirmed, "staff_present": sorted(set(present))}


def read_draft(form: Mapping[str, Any]) -> dict[str, Any]:
    """The checklist, interview and outcome fields of a form, checked for shape (not completeness).

    Raises:
        VisitError: a value of the wrong kind (unknown result, a malformed amount or date, an over-long note).
    """
    problems: list[str] = []
    sections = {
        "checklist": {item: {"result": _choice(form, f"{item}.result", RESULTS, problems),
                             "note": _text(form, f"{item}.note", MAX_NOTE, problems)} for item in CHECKLIST},
        "contract": {"amount": _matching(form, "contract.amount", _AMOUNT, "an amount such as 12000.00", problems),
                     "term_months": _whole(form, "contract.term_months", 1, 600, problems),
                     "annual_rate": _matching(form, "contract.annual_rate", _RATE, "a percentage such as 7.2",
                                              problems)},
        "income_proof": {"stamp": _choice(form, "income_proof.stamp", ("yes", "no"), problems),
                         "signer": _text(form, "income_proof.signer", 100, problems)},
        "interview": _interview(form, problems),
        "outcome": _outcome(form, problems),
    }
    if problems:
        raise VisitError(problems)
    return sections


def _interview(form: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    answers = {name: _text(form, f"interview.{name}", MAX_NOTE, problems) for name in INTERVIEW}
    for name in ("monthly_income", "monthly_expenses"):
        answers[name] = _matching(form, f"interview.{name}", _AMOUNT, "an amount such as 8000", problems)
    answers["willingness"] = _choice(form, "interview.willingness", WILLINGNESS, problems)
    answers["ability"] = _choice(form, "interview.ability", ABILITY, problems)
    return answers


def _outcome(form: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    return {
        "code": _choice(form, "outcome.code", OUTCOMES, problems),
        "amount": _matching(form, "outcome.amount", _AMOUNT, "an amount such as 500.00", problems),
        "date": _day(form, "outcome.date", problems),
        "months": _whole(form, "outcome.months", 2, MAX_PLAN_MONTHS, problems),
        "next_step": _text(form, "outcome.next_step", MAX_NOTE, problems),
    }


def _text(form: Mapping[str, Any], name: str, limit: int, problems: list[str]) -> str:
    value = str(form.get(name, "")).strip()
    if len(value) > limit:
        problems.append(f"{name}: at most {limit} characters")
        return ""
    return value


def _choice(form: Mapping[str, Any], name: str, allowed: tuple[str, ...], problems: list[str]) -> str:
    value = str(form.get(name, ""))
    if value and value not in allowed:
        problems.append(f"{name}: must be one of {', '.join(allowed)}")
        return ""
    return value


def _matching(form: Mapping[str, Any], name: str, pattern: re.Pattern[str], example: str,
              problems: list[str]) -> str:
    value = str(form.get(name, "")).strip().replace(",", "")
    if value and not pattern.fullmatch(value):
        problems.append(f"{name}: must be {example}")
        return ""
    return value


def _whole(form: Mapping[str, Any], name: str, low: int, high: int, problems: list[str]) -> int | None:
    value = str(form.get(name, "")).strip()
    if not value:
        return None
    if not WHOLE_NUMBER.fullmatch(value) or not low <= int(value) <= high:
        problems.append(f"{name}: must be a whole number from {low} to {high}")
        return None
    return int(value)


def _day(form: Mapping[str, Any], name: str, problems: list[str]) -> str:
    value = str(form.get(name, "")).strip()
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        problems.append(f"{name}: must be a real date (YYYY-MM-DD)")
        return ""


# --- what a submission needs -------------------------------------------------------------------


def check_complete(visit: Visit, today: date, promise_max_days: int) -> None:
    """Whether the record can be submitted as final.

    A visit that went ahead needs every checklist item's result, the willingness and ability to
    pay, the reason for the delinquency and an outcome with what the outcome needs. One that did
    not go ahead needs only an outcome, which cannot be a payment, a plan or a promise.

    Raises:
        VisitError: naming everything missing.
    """
    record = visit.record
    outcome = record.get("outcome") or {}
    if visit.went_ahead is None:
        raise VisitError(["arrival: confirm how the visit began before submitting"])
    problems = _outcome_problems(outcome, visit.went_ahead, today, promise_max_days)
    if visit.went_ahead:
        checklist, interview = record.get("checklist", {}), record.get("interview", {})
        problems += [f"{item}.result: choose a result" for item in CHECKLIST
                     if not checklist.get(item, {}).get("result")]
        problems += [f"interview.{name}: required" for name in ("delinquency_reason", "willingness", "ability")
                     if not interview.get(name)]
    if problems:
        raise VisitError(problems)


def _outcome_problems(outcome: Mapping[str, Any], went_ahead: bool, today: date, promise_max_days: int) -> list[str]:
    code = outcome.get("code")
    if not code:
        return ["outcome.code: choose an outcome"]
    if code in OUTCOMES_AFTER_ENTRY and not went_ahead:
        return [f"outcome.code: {code} needs a visit that went ahead"]
    needs = {"paid_on_spot": ("amount",), "plan": ("months",), "promise": ("date",), "follow_up_visit": ("date",)}
    problems = [f"outcome.{what}: required for {code}" for what in needs.get(code, ()) if not outcome.get(what)]
    if problems or code not in ("promise", "follow_up_visit"):
        return problems
    day, latest = date.fromisoformat(outcome["date"]), promise_max_days if code == "promise" else MAX_FOLLOW_UP_DAYS
    if not 0 <= (day - today).days <= latest:
        return [f"outcome.date: must be from {today.isoformat()} to {latest} days later"]
    return []


def discrepancies(record: Mapping[str, Any], ledger_term: int | None) -> list[str]:
    """The checklist items seen with a discrepancy, plus the contract's term if it differs from the ledger's."""
    found = [item for item in CHECKLIST if record.get("checklist", {}).get(item, {}).get("result") == "discrepancy"]
    term = (record.get("contract") or {}).get("term_months")
    if term and ledger_term and term != ledger_term and "loan_contract" not in found:
        found.append("loan_contract")
    return found


def ledger_figures(account: Account, day: date) -> dict[str, Any]:
    """What the ledger says of the loan on the visit's day, shown beside the contract the borrower holds."""
    amounts = {i.amount_due for i in account.installments}
    return {"scheduled": str(sum((i.amount_due for i in account.installments), Decimal(0))),
            "term": len(account.installments), "instalment": str(amounts.pop()) if len(amounts) == 1 else "",
            "overdue": str(overdue(account, day).amount)}


# --- storage -----------------------------------------------------------------------------------

# KEYS: visit hash. ARGV: sealed record, expected version, new state, ttl seconds.
# Returns the new version, or -1 when stale or already submitted.
_SAVE = """
local state = redis.call('HGET', KEYS[1], 'state')
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if state == 'submitted' or version ~= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', version + 1, 'record', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return version + 1
"""
# Submitting also files the outcome for screening and the ledger view, in the same step: a sorted
# set by submission time, trimmed to the retention period and to OUTCOMES_KEPT entries.
# KEYS: visit hash, outcomes. ARGV: sealed record, expected version, ttl seconds, sealed outcome,
# submitted at, oldest time kept, entries kept.
_SUBMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if state == 'submitted' or version ~= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'state', 'submitted', 'version', version + 1, 'record', ARGV[1], 'settled', '0')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[7]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[3])
return version + 1
"""
# Addenda and reports live exactly as long as their record, which must still be there and submitted.
# KEYS: visit hash, addenda list. ARGV: sealed addendum.
_ADDENDUM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'submitted' then return -1 end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then return -1 end
local n = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
return n
"""
# KEYS: visit hash, reports hash. ARGV: name, sealed bytes, name, sealed bytes, ...
_REPORTS = """
if redis.call('HGET', KEYS[1], 'state') ~= 'submitted' then return 0 end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV))
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""
OUTCOMES_KEPT = 20


class FieldVisits:
    """Visit records in Redis, sealed, deleted ``retention_seconds`` after their last change of state."""

    def __init__(self, redis: Any, vault: Vault, retention_seconds: int) -> None:
        self._redis = redis
        self._vault = vault
        self.retention_seconds = retention_seconds
        self._save = redis.register_script(_SAVE)
        self._submit = redis.register_script(_SUBMIT)
        self._addendum = redis.register_script(_ADDENDUM)
        self._reports = redis.register_script(_REPORTS)

    async def get(self, booking: Booking) -> Visit:
        """The visit for a booking; a new, empty one if nothing was recorded yet."""
        visit = await self.find(booking.booking_id)
        return visit or Visit(booking.booking_id, "new", 0, {"booking": booking.to_record()})

    async def find(self, booking_id: str) -> Visit | None:
        """The recorded visit, whether or not its booking still stands (it keeps its own copy)."""
        stored = await self._redis.hmget(keys.field_visit(booking_id), "state", "version", "record", "settled")
        if not stored[0]:
            return None
        addenda = await self._redis.lrange(keys.field_visit_addenda(booking_id), 0, -1)
        return Visit(booking_id, stored[0].decode(), int(stored[1]), self._vault.open(stored[2]),
                     [self._vault.open(a) for a in addenda], stored[3] == b"1")

    async def arrive(self, visit: Visit, arrival: dict[str, Any], ledger: dict[str, Any], by: str) -> Visit:
        """Record how the visit began, with the ledger's figures as they stand; once recorded it is
        not changed (an addendum corrects it).

        Raises:
            StaleVisit: arrival was already recorded, or the record changed meanwhile.
        """
        if visit.record.get("arrival"):
            raise StaleVisit
        record = {**visit.record, "arrival": {**arrival, "at": int(time.time()), "by": by}, "ledger": ledger}
        return await self._store(visit, record, by, "draft", "visit_arrival")

    async def save_draft(self, visit: Visit, sections: dict[str, Any], by: str) -> Visit:
        """Save what the visitor has filled in so far.

        Raises:
            VisitError: checklist or interview content before consent to entry.
            StaleVisit: the record changed since ``visit`` was read, or was submitted.
        """
        if visit.went_ahead is None:
            raise VisitError(["arrival: record how the visit began first"])
        if not visit.consented and _has_findings(sections):
            raise VisitError(["checklist: the borrower's consent to entry must be recorded first"])
        return await self._store(visit, {**visit.record, **sections}, by, "draft", None)

    async def submit(self, visit: Visit, by: str, today: date, promise_max_days: int) -> Visit:
        """Make the record final.

        Raises:
            VisitError: something a final record needs is missing.
            StaleVisit: the record changed since ``visit`` was read, or was already submitted.
        """
        check_complete(visit, today, promise_max_days)
        now = int(time.time())
        record = {**visit.record, "submitted_at": now, "updated_at": now, "submitted_by": by, "updated_by": by}
        account_id = record["booking"]["account_id"]
        outcome = {"code": record["outcome"]["code"], "at": now, "booking_id": visit.booking_id,
                   "went_ahead": bool(visit.went_ahead), "date": record["outcome"].get("date", "")}
        version = await self._submit(
            keys=[keys.field_visit(visit.booking_id), keys.field_visit_outcomes(account_id)],
            args=[self._vault.seal(record), visit.version, self.retention_seconds, self._vault.seal(outcome), now,
                  now - self.retention_seconds, OUTCOMES_KEPT])
        if version == -1:
            raise StaleVisit
        await audit.record(self._redis, "visit_submitted", agent=by, booking=visit.booking_id, account_id=account_id)
        return Visit(visit.booking_id, "submitted", int(version), record, visit.addenda)

    async def settled(self, visit: Visit) -> None:
        """Mark a submitted visit's outcome applied and its reports written (done again until marked)."""
        await self._redis.hset(keys.field_visit(visit.booking_id), "settled", "1")

    async def add_addendum(self, visit: Visit, text: str, by: str) -> Visit:
        """Append a correction to a submitted record.

        Raises:
            VisitError: empty or over-long text, or the record is not submitted yet.
        """
        text = text.strip()
        if not text or len(text) > MAX_ADDENDUM:
            raise VisitError([f"addendum: 1 to {MAX_ADDENDUM} characters"])
        entry = {"at": int(time.time()), "by": by, "text": text}
        added = await self._addendum(keys=[keys.field_visit(visit.booking_id),
                                           keys.field_visit_addenda(visit.booking_id)],
                                     args=[self._vault.seal(entry)])
        if added == -1:
            raise VisitError(["addendum: only a submitted record takes addenda; edit the draft instead"])
        await audit.record(self._redis, "visit_addendum", agent=by, booking=visit.booking_id)
        return Visit(visit.booking_id, visit.state, visit.version, visit.record, [*visit.addenda, entry])

    async def _store(self, visit: Visit, record: dict[str, Any], by: str, state: str, event: str | None) -> Visit:
        record = {**record, "updated_at": int(time.time()), "updated_by": by}
        account_id = record["booking"]["account_id"]
        version = await self._save(keys=[keys.field_visit(visit.booking_id)],
                                   args=[self._vault.seal(record), visit.version, state, self.retention_seconds])
        if version == -1:
            raise StaleVisit
        if event:
            await audit.record(self._redis, event, agent=by, booking=visit.booking_id, account_id=account_id)
        return Visit(visit.booking_id, state, int(version), record, visit.addenda)

    async def outcomes(self, account_id: str, count: int = 5) -> list[dict[str, Any]]:
        """The newest visit outcomes on the account within the retention period (codes and dates, no notes)."""
        sealed = await self._redis.zrevrangebyscore(keys.field_visit_outcomes(account_id), "+inf",
                                                    self.oldest_kept(), start=0, num=count)
        return [self._vault.open(s) for s in sealed]

    def oldest_kept(self) -> int:
        """The earliest submission time still within the retention period."""
        return int(time.time()) - self.retention_seconds

    async def store_reports(self, booking_id: str, reports: Mapping[str, bytes]) -> None:
        """Keep the generated reports (name → bytes) sealed, for as long as the record; nothing if it is gone."""
        pairs = [value for name, data in reports.items() for value in (name, self._vault.seal_bytes(data))]
        if pairs:
            await self._reports(keys=[keys.field_visit(booking_id), keys.field_visit_report(booking_id)],
                                args=pairs)

    async def report(self, booking_id: str, name: str) -> bytes | None:
        sealed = await self._redis.hget(keys.field_visit_report(booking_id), name)
        return self._vault.open_bytes(sealed) if sealed else None


def _has_findings(sections: Mapping[str, Any]) -> bool:
    """Whether anything was found inside: a checklist result or note, a contract figure, an interview answer,
    a payment or a plan."""
    checklist = sections.get("checklist", {})
    values = [v for item in checklist.values() for v in item.values()]
    values += [(sections.get("outcome") or {}).get(name) for name in ("amount", "months")]
    for name in ("contract", "income_proof", "interview"):
        values += list((sections.get(name) or {}).values())
    return any(v not in ("", None) for v in values)
