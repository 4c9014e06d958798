"""A borrower's requests about their data (PIPL articles 45 and 47): a copy of all of it, or its deletion.

A borrower's data is spread over some forty kinds of Redis key written by a dozen modules, named by
the account id, by the conversation id (the phone number's pseudonym), by a booking id or by a
Twilio sid, and a few shared keys that hold entries for many accounts. This module is the one place
that knows them all, so that an export misses nothing and a deletion leaves nothing behind; the
inventory below says, key by key, what happens to each. A key added elsewhere must be added here.

Conversations: the phone number's pseudonym, plus any other conversation the account's records
name (a number changed in the ledger leaves its old conversation behind), unless the ledger now
gives that number to another account.

Deletion goes in an order that survives being stopped halfway: first the number's pseudonym index,
so that new messages from the number no longer reach the account; the account's ledger record
goes last, in one transaction with the one audit event, so a deletion that stopped early is found
and finished by running it again. A booked visit is cancelled through the bookings, which frees its
team on the slot in the same step. Nothing personal is logged: counts and the account id only.

Key inventory (bot/core/keys.py and every use of it in bot/; E exported, D deleted, K kept, X excluded):

Per account:
    ledger:acct (E, D last), ledger:accounts member (D), ledger:promise, ledger:paidclaim,
    contact:hold, verify:failures, contact:attempts, contact:attempt-times, contact:last-reply,
    arrangement:current, arrangement:history, hardship:reason, consent, family:contact,
    agent:outcomes, fieldvisit:outcomes (E, D); visit:account (E, D by cancelling the booking).
    lock:outbound (X): held under a minute while one contact is sent; deleting it could let two
        workers contact the borrower at once.
Per conversation:
    ledger:pseudo (E as the conversation id; D where it names this account, first), contact:optout,
    handoff:item, verify:blocked, conversation:language, arrangement:offers, visit:draft,
    tracker:archive (the transcript), tracker (the live Rasa tracker), turns:pending (messages Rasa
    has not taken yet) (E, D); visit:holds (E, D by releasing the holds, which frees the teams held on
    slots); handoff:queue, handoff:held, review:numbers and turns:waiting members (E, D).
    lock:route, turns:order, turns:lease and Rasa's lock store's lock:<conversation> (X): held for
        one message or one turn; deleting them could let two turns interleave. They name the
        conversation, nothing else.
Per booking:
    visit:booking (E, D by cancelling); visit:slot fields and visit:day members hold only booking
    ids and, for holds, the conversation id (D by cancelling and releasing); fieldvisit:<booking>,
    fieldvisit:addenda, fieldvisit:report (E, reports by name only; D). Field visit records are
    found by opening every fieldvisit:v* record: they keep their own copy of the booking.
    outbox:visit-reminder:<booking> (D; X from the export: a state or a sid, nothing else).
Per Twilio sid (a contact attempt's id is its sid):
    contact:status (E, D; found through the attempts and by its account_id field, since it
    outlives them); voice:last, voice:sms-count, voice:keys-answer, outbox:<sid>:* (D; X from the
    export: what a call said is in the transcript, the rest are counters, flags and states).
    webhook:sms:<message sid> (D where its sealed answer mentions the account's numbers or
        addresses; X from the export: the answers are in the transcript). It names neither the
        account nor the conversation, so this is a search, not a lookup; it expires in 7 days.
    voice:last of a call no attempt names (a call that ended at the greeting) is searched the same.
Campaigns:
    campaign:contacts fields <account>:<kind> (E, D); outbox:campaign:* and arq's job, retry and
    result keys and arq:queue members of the account's contacts (D; X from the export: ids only).
    campaign:index, campaign:meta (X): ids, names and counts, nothing of any account.
    campaign:rate, campaign:daily (X): per sender-number counters.
    arq:in-progress:<job> (X): lives while a job runs; the job finds its contact gone.
Shared streams:
    audit:events (E the entries naming the account, its conversations or bookings; K): the record
        of who did what, which the law requires to keep; it holds ids and codes only.
    contact:decisions (E, D the account's entries).
Staff and machinery (X, not a borrower's data): agent:usernames, agent:user, agent:session,
    agent:login-failures and agent:login-locked (hashed), console:events (a pub/sub channel: nothing is stored).

Not in Redis, so not reached from here: screening's output files (account ids and their scores),
Twilio's own message logs and call recordings, the copy of a visit draft an officer's phone keeps
(cleared after a day), and the ledger CSV itself: an import that still lists the account brings
its ledger record back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix, retry_key_prefix

from bot.campaigns.campaign import job_id
from bot.core import audit, keys
from bot.core.crypto import InvalidToken, pseudonym
from bot.domain import transcripts
from bot.domain.booking import Booking
from bot.domain.consent import PURPOSES
from bot.domain.handoffs import OUTCOMES_KEPT
from bot.domain.ledger import Account
from bot.field.visits import Visit
from bot.services import Services

log = logging.getLogger(__name__)

SCAN_COUNT = 1000
# Numbers and addresses shorter than this are not searched for in sealed answers: too likely elsewhere.
MIN_MARKER = 6
# Sealed caches that name neither the account nor the conversation: searched by content.
_SEARCHED_CACHES = (keys.webhook_seen("*"), keys.last_said("*"))
# KEYS: the pseudonym index. ARGV: the account id. Deleted only while it names this account.
_DELETE_OWN_INDEX = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed: keys deleted, and entries taken out of shared keys, counted per kind."""

    account_id: str
    keys: dict[str, int]
    entries: dict[str, int]

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())


@dataclass(frozen=True)
class _CampaignContact:
    campaign_id: str
    kind: str
    job_id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class _Found:
    """Where the account's data is: the ids that name its keys, and what had to be opened to find them."""

    account: Account
    conversations: tuple[str, ...]  # the phone number's pseudonym first
    booking: Booking | None
    visits: tuple[Visit, ...]
    statuses: dict[str, dict[str, str]]  # sid -> contact:status
    sids: tuple[str, ...]
    campaign: tuple[_CampaignContact, ...]

    @property
    def booking_ids(self) -> set[str]:
        """The booking's and the field visits' (a visit keeps its record after its booking is gone)."""
        return {v.booking_id for v in self.visits} | ({self.booking.booking_id} if self.booking else set())


# --- export ------------------------------------------------------------------------------------


async def export_account(svc: Services, account_id: str) -> dict[str, Any] | None:
    """Everything the system holds about the borrower, as plain JSON-safe values; None if no such account.

    Raises:
        InvalidToken: a record is sealed under a key that is no longer configured (nothing is skipped).
    """
    account = await svc.ledger.get(account_id)
    if account is None:
        return None
    found = await _find(svc, account)
    export: dict[str, Any] = {
        "account_id": account_id,
        "ledger": _plain(asdict(account)),
        "conversation_id": found.conversations[0],
        **await _account_records(svc, account_id),
        "visit_booking": found.booking.to_record() if found.booking else None,
        "field_visits": [await _field_visit(svc, visit) for visit in found.visits],
        "contact_attempts": await _attempts(svc, found),
        "contact_decisions": [{"id": i, **f} for i, f in await _stream(svc.redis, keys.CONTACT_DECISIONS,
                                                                        _of_account(account_id))],
        "campaign_contacts": [{"campaign_id": c.campaign_id, "kind": c.kind, **c.record} for c in found.campaign],
        "conversations": {c: await _conversation(svc, c) for c in found.conversations},
        "audit_events": [{"id": i, **f} for i, f in await _stream(svc.redis, keys.AUDIT_STREAM, _names(found))],
    }
    log.info("privacy export of account %s: %d conversation(s), %d field visit(s), %d contact attempt(s)",
             account_id, len(found.conversations), len(found.visits), len(found.sids))
    return export


def to_json(export: dict[str, Any]) -> str:
    """The export as the file handed to the borrower: UTF-8 text as written, dates as ISO 8601."""
    return json.dumps(export, ensure_ascii=False, indent=2, default=_json_value)


async def _account_records(svc: Services, account_id: str) -> dict[str, Any]:
    redis = svc.redis
    consents = {p: await svc.consents.get(account_id, p) for p in PURPOSES}
    outcomes = await redis.zrange(keys.field_visit_outcomes(account_id), 0, -1)
    return {
        "promise": await svc.records.get_promise(account_id),
        "paid_claim": _text(await redis.hgetall(keys.paid_claim(account_id))) or None,
        "arrangement": await svc.arrangements.current(account_id),
        "arrangement_history": [{"entry": m.decode(), "accepted_at": int(at)} for m, at in
                                await redis.zrange(keys.arrangement_history(account_id), 0, -1, withscores=True)],
        "hardship_reason": await svc.arrangements.reason(account_id),
        "consents": {p: record for p, record in consents.items() if record},
        "family_contact": await _opened(svc, keys.family_contact(account_id)),
        "contact_holds": _text(await redis.hgetall(keys.hold(account_id))),
        "verification_failures": await svc.records.verification_failures(account_id),
        "last_reply": _number(await redis.get(keys.last_reply(account_id))),
        "agent_outcomes": await svc.handoffs.outcomes(account_id, OUTCOMES_KEPT),
        "field_visit_outcomes": [svc.vault.open(s) for s in outcomes],
    }


async def _field_visit(svc: Services, visit: Visit) -> dict[str, Any]:
    reports = await svc.redis.hkeys(keys.field_visit_report(visit.booking_id))
    return {"booking_id": visit.booking_id, "state": visit.state, "version": visit.version,
            "settled": visit.settled, "record": visit.record, "addenda": visit.addenda,
            "reports": sorted(name.decode() for name in reports)}


async def _attempts(svc: Services, found: _Found) -> list[dict[str, Any]]:
    """Each contact attempt with its delivery status, oldest first."""
    account_id = found.account.account_id
    stored = await svc.redis.hmget(keys.contact_attempts(account_id), found.sids) if found.sids else []
    attempts = [{"id": sid, **(json.loads(raw) if raw else {}), "status": found.statuses.get(sid)}
                for sid, raw in zip(found.sids, stored, strict=True)]
    return sorted(attempts, key=lambda a: float(a.get("at") or (a["status"] or {}).get("at") or 0))


async def _conversation(svc: Services, conversation_id: str) -> dict[str, Any]:
    redis = svc.redis
    queued = [await redis.zscore(k, conversation_id) for k in (keys.HANDOFF_QUEUE, keys.HANDOFF_HELD)]
    entries = await transcripts.read(redis, svc.vault, conversation_id)
    return {
        "opt_out": _text(await redis.hgetall(keys.opt_out(conversation_id))) or None,
        "language": await svc.records.language(conversation_id),
        "disclosure_blocked": _string(await redis.get(keys.disclosure_block(conversation_id))),
        "handoff": _text(await redis.hgetall(keys.handoff(conversation_id))) or None,
        "handoff_queue": "waiting" if queued[0] is not None else "held" if queued[1] is not None else None,
        "number_under_review_since": _number(await redis.zscore(keys.REVIEW_NUMBERS, conversation_id)),
        "plan_offers": await _opened(svc, keys.arrangement_offers(conversation_id)),
        "visit_draft": await _opened(svc, keys.visit_draft(conversation_id)),
        "visit_holds": sorted(s.decode() for s in await redis.smembers(keys.visit_holds(conversation_id))),
        "transcript": [_plain(asdict(entry)) for entry in entries],
        "tracker": await _opened(svc, keys.tracker(conversation_id)),
        "messages_not_yet_answered": [svc.vault.open(m) for m in await redis.lrange(
            keys.turns_pending(conversation_id), 0, -1)],
    }


# --- deletion ----------------------------------------------------------------------------------


async def delete_account(svc: Services, account_id: str, requested_by: str) -> Deletion | None:
    """Delete everything held about the borrower but the audit stream, then audit the deletion once.

    Safe to run twice: a second run finds no account and does nothing; a run that stopped halfway
    left the ledger record, so running it again finishes the work.

    Args:
        requested_by: the username of the person carrying out the request, for the audit event.

    Returns:
        The counts of what was removed; None (and nothing written) if there is no such account.

    Raises:
        InvalidToken: a record is sealed under a key that is no longer configured.
    """
    account = await svc.ledger.get(account_id)
    if account is None:
        return None
    own = pseudonym(account.phone, svc.settings.hmac_secret)
    removed = {"ledger_index": int(await svc.redis.eval(_DELETE_OWN_INDEX, 1, keys.account_by_pseudonym(own),
                                                        account_id))}
    found = await _find(svc, account)
    markers = await _markers(svc, found)
    removed["booking"] = await _cancel_visit(svc, found)
    removed.update(await _delete_keys(svc, found, markers))
    entries = await _remove_entries(svc, found)
    if not await _delete_ledger_record(svc, account_id, requested_by, sum(removed.values()) + 1):
        return None
    deletion = Deletion(account_id, {**removed, "ledger": 1}, {**entries, keys.ACCOUNT_IDS: 1})
    log.info("privacy delete of account %s: %d keys deleted, %d entries removed from shared keys",
             account_id, deletion.total_keys, sum(deletion.entries.values()))
    return deletion


async def _cancel_visit(svc: Services, found: _Found) -> int:
    """Cancel the booking (its team on the slot is freed) and let go of held slots; the keys that went."""
    conversations = [c for c in found.conversations if "|" not in c]
    names = [keys.visit_account(found.account.account_id), *(keys.visit_holds(c) for c in conversations)]
    if found.booking:
        names.append(keys.visit_booking(found.booking.booking_id))
    existing = int(await svc.redis.exists(*names))
    await svc.bookings.cancel(found.account.account_id)
    for conversation in conversations:
        await svc.bookings.release_holds(conversation)
    return existing


async def _delete_keys(svc: Services, found: _Found, markers: set[str]) -> dict[str, int]:
    account_id = found.account.account_id
    per_account = [keys.promise, keys.paid_claim, keys.hold, keys.verification_failures, keys.contact_attempts,
                   keys.contact_attempt_times, keys.last_reply, keys.arrangement, keys.arrangement_history,
                   keys.hardship_reason, keys.consent, keys.family_contact, keys.agent_outcomes,
                   keys.field_visit_outcomes]
    per_conversation = [keys.opt_out, keys.handoff, keys.disclosure_block, keys.language, keys.arrangement_offers,
                        keys.visit_draft, keys.tracker_archive, keys.tracker, keys.turns_pending]
    per_visit = [keys.field_visit, keys.field_visit_addenda, keys.field_visit_report]
    per_sid = [keys.contact_status, keys.last_said, keys.call_sms_count, keys.keys_answer]
    jobs = [prefix + c.job_id for c in found.campaign for prefix in (job_key_prefix, retry_key_prefix,
                                                                     result_key_prefix)]
    groups = {
        "account": [name(account_id) for name in per_account],
        "conversation": [name(c) for c in found.conversations for name in per_conversation],
        "field_visit": [name(v.booking_id) for v in found.visits for name in per_visit],
        "contact": [name(sid) for sid in found.sids for name in per_sid],
        "outbox": await _outbox_keys(svc, found),
        "campaign_job": jobs,
        "cache": await _cached_mentions(svc, markers),
    }
    return {kind: int(await svc.redis.delete(*names)) if names else 0 for kind, names in groups.items()}


async def _remove_entries(svc: Services, found: _Found) -> dict[str, int]:
    """Take the account's entries out of keys shared with other accounts."""
    redis, account_id = svc.redis, found.account.account_id
    removed = {name: int(await redis.zrem(name, *found.conversations))
               for name in (keys.HANDOFF_QUEUE, keys.HANDOFF_HELD, keys.REVIEW_NUMBERS, keys.TURNS_WAITING)}
    removed[keys.campaign_contacts("*")] = sum([
        int(await redis.hdel(keys.campaign_contacts(c.campaign_id), f"{account_id}:{c.kind}")) for c in found.campaign])
    jobs = [c.job_id for c in found.campaign]
    removed[default_queue_name] = int(await redis.zrem(default_queue_name, *jobs)) if jobs else 0
    decisions = [i for i, _ in await _stream(redis, keys.CONTACT_DECISIONS, _of_account(account_id))]
    removed[keys.CONTACT_DECISIONS] = int(await redis.xdel(keys.CONTACT_DECISIONS, *decisions)) if decisions else 0
    return removed


async def _delete_ledger_record(svc: Services, account_id: str, requested_by: str, count: int) -> bool:
    """The ledger record, its place in the ledger's index and the audit event, in one step; False if already gone."""
    async with svc.redis.pipeline(transaction=True) as tx:
        await tx.watch(keys.account(account_id))
        if not await tx.exists(keys.account(account_id)):
            return False  # another deletion of the same account finished first
        tx.multi()
        tx.delete(keys.account(account_id))
        tx.srem(keys.ACCOUNT_IDS, account_id)
        audit.record(tx, "privacy_delete", account_id=account_id, agent=requested_by, keys=str(count))
        await tx.execute()
    return True


async def _outbox_keys(svc: Services, found: _Found) -> list[str]:
    """Outbox keys that name the account's campaign contacts, conversations, bookings or calls."""
    exact = {keys.outbox(c.job_id) for c in found.campaign}
    exact |= {keys.outbox(f"visit-reminder:{b}") for b in found.booking_ids}
    prefixes = tuple([keys.outbox(f"agent:{c}:") for c in found.conversations]
                     + [keys.outbox(f"{sid}:") for sid in found.sids])
    names = []
    async for batch in _scan(svc.redis, keys.outbox("*")):
        names += [name for name in batch if name in exact or name.startswith(prefixes)]
    return names


async def _cached_mentions(svc: Services, markers: set[str]) -> list[str]:
    """Sealed caches keyed by a Twilio sid alone whose content mentions the borrower's numbers or addresses."""
    if not markers:
        return []
    found = []
    for pattern in _SEARCHED_CACHES:
        async for batch in _scan(svc.redis, pattern):
            values = await svc.redis.mget(batch)
            found += [name for name, sealed in zip(batch, values, strict=True)
                      if sealed and any(m in _opened_text(svc, sealed) for m in markers)]
    return found


async def _markers(svc: Services, found: _Found) -> set[str]:
    """The phone numbers and addresses to search sealed caches for, as written and as escaped in TwiML."""
    account = found.account
    contact = await _opened(svc, keys.family_contact(account.account_id)) or {}
    drafts = [await _opened(svc, keys.visit_draft(c)) or {} for c in found.conversations]
    bookings = ([found.booking.details] if found.booking else []) + [v.record["booking"]["details"]
                                                                     for v in found.visits]
    values = [account.phone, account.address, contact.get("phone"), *(d.get("address") for d in drafts),
              *(b.get("address") for b in bookings)]
    return {form for value in values if isinstance(value, str) and len(value) >= MIN_MARKER
            for form in (value, escape(value))}


# --- finding the account's data ----------------------------------------------------------------


async def _find(svc: Services, account: Account) -> _Found:
    account_id = account.account_id
    booking = await svc.bookings.booking_for(account_id)
    visits = await _field_visits(svc, account_id)
    statuses = await _contact_statuses(svc, account_id)
    attempt_ids = [k.decode() for k in await svc.redis.hkeys(keys.contact_attempts(account_id))]
    return _Found(account=account, conversations=await _conversations(svc, account, booking, visits),
                  booking=booking, visits=tuple(visits), statuses=statuses,
                  sids=tuple(sorted(set(attempt_ids) | set(statuses))),
                  campaign=tuple(await _campaign_contacts(svc, account_id)))


async def _conversations(svc: Services, account: Account, booking: Booking | None,
                         visits: list[Visit]) -> tuple[str, ...]:
    """The phone number's conversation, then the others the account's records name that no other account has."""
    account_id = account.account_id
    own = pseudonym(account.phone, svc.settings.hmac_secret)
    records = [await svc.records.get_promise(account_id), await svc.arrangements.current(account_id),
               await svc.arrangements.reason(account_id), *[await svc.consents.get(account_id, p) for p in PURPOSES],
               *await svc.handoffs.outcomes(account_id, OUTCOMES_KEPT)]
    named = {r.get(name) for r in records if r for name in ("conversation", "withdrawn_conversation")}
    named |= {v.record["booking"]["conversation_id"] for v in visits}
    named |= {booking.conversation_id} if booking else set()
    named |= {i.conversation_id for i in await svc.handoffs.items() if i.account_id == account_id}
    others = sorted(c for c in named if isinstance(c, str) and c and c != own)
    owners = await svc.redis.mget([keys.account_by_pseudonym(c) for c in others]) if others else []
    return (own, *(c for c, owner in zip(others, owners, strict=True) if owner in (None, account_id.encode())))


async def _field_visits(svc: Services, account_id: str) -> list[Visit]:
    """Every field visit record on the account, opened to read its booking's account (oldest booking id first)."""
    prefix = keys.field_visit("")
    found = []
    async for batch in _scan(svc.redis, keys.field_visit("v*")):
        sealed = await _hget_each(svc.redis, batch, "record")
        for name, record in zip(batch, sealed, strict=True):
            if record and svc.vault.open(record)["booking"]["account_id"] == account_id:
                visit = await svc.field_visits.find(name.removeprefix(prefix))
                found += [visit] if visit else []
    return sorted(found, key=lambda v: v.booking_id)


async def _contact_statuses(svc: Services, account_id: str) -> dict[str, dict[str, str]]:
    """Delivery statuses of contacts with the account (kept longer than the attempts that name them)."""
    prefix = keys.contact_status("")
    found = {}
    async for batch in _scan(svc.redis, keys.contact_status("*")):
        owners = await _hget_each(svc.redis, batch, "account_id")
        for name, owner in zip(batch, owners, strict=True):
            if owner == account_id.encode():
                found[name.removeprefix(prefix)] = _text(await svc.redis.hgetall(name))
    return found


async def _campaign_contacts(svc: Services, account_id: str) -> list[_CampaignContact]:
    found = []
    for cid in [c.decode() for c in await svc.redis.zrange(keys.CAMPAIGNS, 0, -1)]:
        day = _string(await svc.redis.hget(keys.campaign(cid), "day")) or ""
        async for name, raw in svc.redis.hscan_iter(keys.campaign_contacts(cid), match=_glob(account_id) + ":*"):
            kind = name.decode().rsplit(":", 1)[1]
            found.append(_CampaignContact(cid, kind, job_id(cid, account_id, kind, day), json.loads(raw)))
    return found


def _of_account(account_id: str) -> Callable[[dict[str, str]], bool]:
    return lambda f: f.get("account_id") == account_id


def _names(found: _Found) -> Callable[[dict[str, str]], bool]:
    """Whether an audit event names the account, one of its conversations or one of its bookings."""
    conversations, bookings = set(found.conversations), found.booking_ids
    return lambda f: (f.get("account_id") == found.account.account_id or f.get("conversation") in conversations
                      or f.get("booking") in bookings)


# --- Redis and values --------------------------------------------------------------------------


async def _scan(redis: Any, pattern: str) -> AsyncIterator[list[str]]:
    """Key names matching ``pattern``, a batch at a time (the whole keyspace is walked, without blocking Redis)."""
    batch: list[str] = []
    async for name in redis.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(name.decode())
        if len(batch) == SCAN_COUNT:
            yield batch
            batch = []
    if batch:
        yield batch


async def _hget_each(redis: Any, names: list[str], field_name: str) -> list[bytes | None]:
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(name, field_name)
        return list(await pipe.execute())


async def _stream(redis: Any, name: str, wanted: Callable[[dict[str, str]], bool]) -> list[tuple[str, dict[str, str]]]:
    """The stream's entries whose fields ``wanted`` accepts, oldest first, read a chunk at a time."""
    found: list[tuple[str, dict[str, str]]] = []
    start, last = "-", None
    while True:
        chunk = [(i.decode(), _text(f)) for i, f in await redis.xrange(name, min=start, count=SCAN_COUNT)]
        fresh = [(i, f) for i, f in chunk if i != last]
        found += [(i, f) for i, f in fresh if wanted(f)]
        if not fresh or len(chunk) < SCAN_COUNT:
            return found
        start = last = chunk[-1][0]


async def _opened(svc: Services, name: str) -> Any:
    sealed = await svc.redis.get(name)
    return svc.vault.open(sealed) if sealed else None


def _opened_text(svc: Services, sealed: bytes) -> str:
    """A sealed cache's content as text; empty for a marker that is not sealed ("in-progress")."""
    try:
        return _flatten(svc.vault.open(sealed))
    except (InvalidToken, ValueError):
        return ""


def _flatten(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(_flatten(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_flatten(v) for v in value)
    return str(value)


def _glob(text: str) -> str:
    """``text`` matched literally in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _text(record: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in record.items()}


def _string(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def _number(value: bytes | float | None) -> int | None:
    return int(float(value)) if value is not None else None


def _plain(value: Any) -> Any:
    """Dates and times (a datetime is a date) and amounts as text, tuples as lists: as to_json writes them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _json_value(value) if isinstance(value, date | Decimal) else value


def _json_value(value: Any) -> str:
    """Raises TypeError for anything but a date, a time or an amount, as json.dumps expects."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
