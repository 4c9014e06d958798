"""A borrower's data on request: the export holds every piece, the deletion leaves none and touches no one else.

Both borrowers of the sample ledger in region SH get a full record through the real writers: a
promise, a paid claim and handoffs closed and held, consents and a family contact, a plan, a
hardship reason, a booked visit and a field visit record, calls and messages, an opt-out, a
transcript, a campaign contact. Then CN001 (张伟) asks.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bot.campaigns.campaign import job_id, plan_campaign
from bot.contact.outbound import Sender
from bot.contact.policy import Attempt
from bot.core import keys
from bot.core.crypto import InvalidToken, Vault, pseudonym
from bot.domain.booking import Booking, Slot, slots_on
from bot.domain.consent import FamilyContact
from bot.domain.ledger import Account
from bot.domain.plans import plan_offers
from bot.domain.visit_times import Preference
from bot.field.visits import ledger_figures
from bot.privacy import data_requests
from bot.privacy.data_requests import Deletion, delete_account, export_account, to_json
from bot.services import Services

UTC = ZoneInfo("UTC")
TODAY = date.today()
PROMISE_DAY = TODAY + timedelta(days=5)
WORDING = "我们可以保存一位家人的电话吗？只用于请其转告您回电。"


@dataclass(frozen=True)
class Borrower:
    """One sample borrower with everything the system can hold about them."""

    account: Account
    conversation: str
    address: str  # the visit's: CN002 has none in the ledger
    family_phone: str
    booking: Booking
    call_sid: str
    message_sid: str  # an inbound SMS: only its cached answer is kept
    note: str  # an agent's note when closing a handoff
    said: str  # what the borrower wrote, in the transcript

    @property
    def private(self) -> list[str]:
        """What must not survive a deletion anywhere, not even sealed."""
        national = self.account.phone.removeprefix("+86")
        return [self.account.name, self.account.phone, national, self.address, self.family_phone, self.note,
                self.said]


@dataclass(frozen=True)
class World:
    services: Services
    campaign_id: str
    asker: Borrower  # CN001 张伟
    other: Borrower  # CN002 李娜


class FakeTwilio:
    """Takes every message as Twilio's API would and gives it a fresh sid."""

    def __init__(self) -> None:
        self.messages = self

    async def create_async(self, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(sid="SM" + uuid.uuid4().hex, status="queued")


@pytest.fixture
async def queue(services: Services) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(services.settings.redis_url))
    yield pool
    await pool.close()


@pytest.fixture
async def world(services: Services, queue: ArqRedis, tmp_path: Path) -> World:
    listing = tmp_path / "list.csv"
    listing.write_text("account_id,bucket,days_past_due,strategy,priority\n"
                       "CN001,31-60,45,gentle_sms,2\nCN002,1-30,12,gentle_sms,1\n", encoding="utf-8")
    campaign = await plan_campaign(services, listing, None, "privacy", queue)
    slots = next_working_day_slots(services)
    asker = await populate(services, campaign.campaign_id, "CN001", slots[0], "上海市浦东新区世纪大道100号",
                           "+8613800001111")
    other = await populate(services, campaign.campaign_id, "CN002", slots[2], "上海市徐汇区漕溪北路18号",
                           "+8613900002222")
    for borrower in (asker, other):  # holds on slots while each decides on a new time
        assert await services.bookings.offer(borrower.conversation, "SH", Preference(), datetime.now(UTC))
    return World(services, campaign.campaign_id, asker, other)


def next_working_day_slots(svc: Services) -> list[Slot]:
    region = svc.bookings.field_teams.region("SH")
    assert region is not None
    day = datetime.now(region.zone).date() + timedelta(days=1)
    while not slots_on(region, day):
        day += timedelta(days=1)
    return slots_on(region, day)


async def populate(svc: Services, campaign_id: str, account_id: str, slot: Slot, address: str,
                   family_phone: str) -> Borrower:
    account = await svc.ledger.get(account_id)
    assert account is not None
    conversation = pseudonym(account.phone, svc.settings.hmac_secret)
    note = f"{account.name}说下周一发工资后还款 {account_id}"
    said = f"我住在{address}，身份证后四位{account.id_last4}"
    await record_conversation(svc, account, conversation, note, said)
    await agree_and_plan(svc, account, conversation, family_phone)
    booking = await svc.bookings.book(conversation, account_id, slot, {"place": "home", "address": address,
                                                                      "language": "zh"},
                                      now=slot.start - timedelta(days=1))
    assert booking is not None
    await svc.redis.set(keys.visit_draft(conversation), svc.vault.seal({"place": "home", "address": address}))
    await svc.pending_turns.add(conversation, "SM" + "7" * 32, said)  # a message Rasa has not taken yet
    await record_field_visit(svc, account, booking)
    call_sid, message_sid = await contact(svc, account, conversation, campaign_id, address)
    return Borrower(account, conversation, address, family_phone, booking, call_sid, message_sid, note, said)


async def record_conversation(svc: Services, account: Account, conversation: str, note: str, said: str) -> None:
    """A promise, a paid claim handed to an agent and closed, a complaint held by another, the number flagged."""
    account_id = account.account_id
    await svc.records.promise(account_id, conversation, PROMISE_DAY, Decimal("500.00"))
    await svc.records.paid_claim(account_id, conversation)
    assert await svc.handoffs.claim(conversation, "agent1")
    item = await svc.handoffs.item(conversation)
    assert item is not None and await svc.handoffs.close(item, "agent1", "other", note)
    await svc.records.hand_off(conversation, account_id, "complaint")
    assert await svc.handoffs.claim(conversation, "agent2")
    await svc.records.flag_number(conversation, "third_party", stop_contact=False)
    await svc.records.opt_out(conversation, "keyword")
    await svc.records.set_language(conversation, "en")
    await svc.records.block_disclosure(conversation, "third_party")
    await svc.records.verification_failed(account_id)
    now = time.time()
    events = [{"event": "user", "text": said, "timestamp": now - 60, "metadata": {"channel": "sms"}},
              {"event": "bot", "text": "谢谢，已为您登记。", "timestamp": now - 59}]
    await svc.redis.rpush(keys.tracker_archive(conversation), *(svc.vault.seal(e) for e in events))
    await svc.redis.set(keys.tracker(conversation), svc.vault.seal({"name": conversation, "events": events,
                                                                     "archived_until": now - 59}))


async def agree_and_plan(svc: Services, account: Account, conversation: str, family_phone: str) -> None:
    """Both consents and the family contact; an accepted plan, the offers shown since, and why they cannot pay."""
    account_id = account.account_id
    await svc.consents.record(account_id, "family_contact", "granted", conversation, "sms", WORDING,
                              "utter_ask_family_consent")
    await svc.consents.save_family_contact(account_id, FamilyContact(family_phone, "我妈 王秀英"))
    await svc.consents.record(account_id, "visit_address", "granted", conversation, "sms", "可以记录您的住址吗？",
                              "utter_ask_address_consent_home")
    offers = plan_offers(svc.plan_policy[account.product], Decimal("3000.00"), account.currency, TODAY,
                         plans_last_year=0)
    await svc.arrangements.accept(account, conversation, offers[0], TODAY, "sms", yearly_limit=2)
    await svc.arrangements.keep_offers(conversation, offers)
    await svc.arrangements.record_reason(account_id, conversation, "illness", "住院两个月")


async def record_field_visit(svc: Services, account: Account, booking: Booking) -> None:
    """Nobody was home: submitted with a follow-up visit, then an addendum and a report."""
    officer = booking.staff[0].staff_id
    visit = await svc.field_visits.get(booking)
    visit = await svc.field_visits.arrive(visit, {"result": "not_home",
                                                  "staff_present": [s.staff_id for s in booking.staff]},
                                          ledger_figures(account, TODAY), officer)
    outcome = {"code": "follow_up_visit", "amount": "", "date": (TODAY + timedelta(days=7)).isoformat(),
               "months": None, "next_step": f"邻居说{account.name}白天在单位"}
    visit = await svc.field_visits.save_draft(visit, {"outcome": outcome}, officer)
    visit = await svc.field_visits.submit(visit, officer, TODAY, svc.settings.promise_max_days)
    await svc.field_visits.add_addendum(visit, f"{account.name}的邻居留了电话", officer)
    await svc.field_visits.store_reports(booking.booking_id, {"visit-zh.html": f"<p>{account.name}</p>".encode()})


async def contact(svc: Services, account: Account, conversation: str, campaign_id: str,
                  address: str) -> tuple[str, str]:
    """The campaign's SMS, an agent's reply, an answered call and its SMS, a reply, an inbound SMS answered."""
    sender = Sender(cast(Any, FakeTwilio()), svc.settings, svc.policy, svc.redis)
    day = datetime.now(UTC).date().isoformat()
    for outbox_key in (job_id(campaign_id, account.account_id, "sms", day), f"agent:{conversation}:n1"):
        assert (await sender.sms(account, "请尽快还款。", outbox_key, requested=True)).outcome == "queued"
    await svc.policy.decide(account, "sms")
    call_sid, message_sid = "CA" + uuid.uuid4().hex, "SM" + uuid.uuid4().hex
    await svc.policy.record_attempt(account.account_id, call_sid,
                                    Attempt(datetime.now(UTC) - timedelta(hours=1), "call", answered=True))
    await svc.redis.set(keys.last_said(call_sid), svc.vault.seal([f"{account.name}您好"]), ex=3600)
    await svc.redis.incr(keys.call_sms_count(call_sid))
    await svc.redis.set(keys.outbox(f"{call_sid}:sms:1"), "SM" + uuid.uuid4().hex)
    await svc.redis.set(keys.last_reply(account.account_id), int(time.time()))
    twiml = f"<Response><Message>已预约，地点：{address}</Message></Response>"
    await svc.redis.set(keys.webhook_seen(message_sid), svc.vault.seal(twiml), ex=7 * 86400)
    return call_sid, message_sid


# --- export --------------------------------------------------------------------------------------


async def test_the_export_holds_every_piece(world: World) -> None:
    svc, asker = world.services, world.asker
    export = await export_account(svc, "CN001")
    assert export is not None
    assert export["ledger"]["name"] == "张伟" and export["ledger"]["phone"] == "+8613800138000"
    assert export["ledger"]["birth_date"] == "1985-03-12"
    assert export["ledger"]["installments"] and all(isinstance(i["due_date"], str)
                                                    for i in export["ledger"]["installments"])
    assert export["conversation_id"] == asker.conversation
    assert export["promise"]["date"] == PROMISE_DAY.isoformat() and export["promise"]["amount"] == "500.00"
    assert set(export["paid_claim"]) == {"at"}
    assert export["arrangement"]["offer"]["count"] == 3 and len(export["arrangement_history"]) == 1
    assert export["hardship_reason"]["text"] == "住院两个月"
    assert export["consents"]["family_contact"]["wording"] == WORDING
    assert export["consents"]["family_contact"]["wording_version"].startswith("utter_ask_family_consent#")
    assert export["consents"]["visit_address"]["status"] == "granted"
    assert export["family_contact"]["phone"] == "+8613800001111"
    assert export["family_contact"]["description"] == "我妈 王秀英"
    assert export["contact_holds"].keys() == {"already_paid"}
    assert export["verification_failures"] == 1 and export["last_reply"] > 0
    assert [o["note"] for o in export["agent_outcomes"]] == [asker.note]
    assert [o["code"] for o in export["field_visit_outcomes"]] == ["follow_up_visit"]


async def test_the_export_holds_the_visits_contacts_and_conversation(world: World) -> None:
    svc, asker = world.services, world.asker
    export = await export_account(svc, "CN001")
    assert export is not None
    assert export["visit_booking"]["booking_id"] == asker.booking.booking_id
    assert export["visit_booking"]["details"]["address"] == asker.address
    [visit] = export["field_visits"]
    assert visit["booking_id"] == asker.booking.booking_id and visit["state"] == "submitted"
    assert visit["record"]["arrival"]["result"] == "not_home"
    assert visit["record"]["outcome"]["next_step"] == "邻居说张伟白天在单位"
    assert [a["text"] for a in visit["addenda"]] == ["张伟的邻居留了电话"]
    assert visit["reports"] == ["visit-zh.html"]
    attempts = {a["id"]: a for a in export["contact_attempts"]}
    assert len(attempts) == 3 and attempts[asker.call_sid]["answered"] is True
    assert sorted(a["status"]["status"] for a in attempts.values() if a["status"]) == ["queued", "queued"]
    assert {d["account_id"] for d in export["contact_decisions"]} == {"CN001"}
    assert [d["allowed"] for d in export["contact_decisions"]] == ["1", "1", "0"]
    assert export["contact_decisions"][2]["reason"].startswith("opted out (keyword); ")
    assert export["campaign_contacts"] == [{"campaign_id": world.campaign_id, "kind": "sms", "state": "planned",
                                            "strategy": "gentle_sms", "priority": 2.0}]
    talk = export["conversations"][asker.conversation]
    assert talk["opt_out"]["source"] == "keyword" and talk["language"] == "en"
    assert talk["disclosure_blocked"] == "third_party" and talk["number_under_review_since"] > 0
    assert talk["handoff"]["reason"] == "complaint" and talk["handoff_queue"] == "held"
    assert [o["count"] for o in talk["plan_offers"]["offers"]] == [3, 6, 12]
    assert talk["visit_draft"]["address"] == asker.address and talk["visit_holds"]
    assert [(line["who"], line["text"]) for line in talk["transcript"]][0] == ("borrower", asker.said)
    assert talk["tracker"]["events"][0]["text"] == asker.said
    assert talk["messages_not_yet_answered"] == [{"sid": "SM" + "7" * 32, "body": asker.said}]
    assert {"promise", "handoff", "visit_booked", "visit_submitted"} <= {e["event"] for e in export["audit_events"]}


async def test_the_export_is_json_with_the_borrower_s_own_writing(world: World) -> None:
    export = await export_account(world.services, "CN001")
    assert export is not None
    text = to_json(export)
    assert json.loads(text) == export
    assert "张伟" in text and world.other.account.name not in text and world.other.account.phone not in text


def test_dates_and_amounts_are_written_as_iso_and_text() -> None:
    written = to_json({"day": date(2026, 12, 5), "at": datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
                       "amount": Decimal("1250.50"), "name": "张伟"})
    assert json.loads(written) == {"day": "2026-12-05", "at": "2026-12-05T09:30:00+00:00", "amount": "1250.50",
                                   "name": "张伟"}
    with pytest.raises(TypeError):
        to_json({"what": object()})


async def test_no_export_of_an_unknown_account(services: Services) -> None:
    assert await export_account(services, "NOPE") is None


# --- deletion ------------------------------------------------------------------------------------


async def test_a_deletion_leaves_nothing_of_the_borrower(world: World) -> None:
    svc, asker = world.services, world.asker
    deletion = await delete_account(svc, "CN001", "supervisor1")
    assert deletion is not None
    assert all(deletion.keys[kind] > 0 for kind in ("ledger_index", "booking", "account", "conversation",
                                                    "field_visit", "contact", "outbox", "campaign_job", "cache",
                                                    "ledger"))
    assert deletion.entries[keys.HANDOFF_HELD] == 1 and deletion.entries[keys.REVIEW_NUMBERS] == 1
    assert deletion.entries[keys.TURNS_WAITING] == 1
    assert deletion.entries[keys.campaign_contacts("*")] == 1 and deletion.entries["arq:queue"] == 1
    assert deletion.entries[keys.CONTACT_DECISIONS] == 3
    contents = await readable_contents(svc)
    for name, text in contents.items():
        assert asker.account.account_id not in name and asker.conversation not in name
        for private in asker.private:
            assert private not in text, f"{name} still holds the borrower's data"
        if name != keys.AUDIT_STREAM:  # the audit stream keeps ids, by law
            assert asker.account.account_id not in text and asker.conversation not in text, name
    assert await svc.ledger.get("CN001") is None and await svc.ledger.for_conversation(asker.conversation) is None


async def test_a_cancelled_visit_frees_its_team_on_the_slot(world: World) -> None:
    svc, booking = world.services, world.asker.booking
    await delete_account(svc, "CN001", "supervisor1")
    assert await svc.redis.hget(keys.visit_slot(booking.slot.slot_id), booking.team_id) is None
    day = await svc.redis.zrange(keys.visit_day(booking.slot.start.date().isoformat()), 0, -1)
    assert day == [world.other.booking.booking_id.encode()]
    assert await svc.bookings.booking(booking.booking_id) is None


async def test_another_borrower_is_untouched(world: World) -> None:
    svc, other = world.services, world.other
    before = await export_account(svc, "CN002")
    their_keys = {n for n in await all_names(svc) if "CN002" in n or other.conversation in n}
    await delete_account(svc, "CN001", "supervisor1")
    assert await export_account(svc, "CN002") == before
    assert their_keys <= await all_names(svc)
    assert await svc.redis.exists(keys.webhook_seen(other.message_sid))  # their cached answer, not the asker's
    assert b"CN002" in await svc.redis.smembers(keys.ACCOUNT_IDS)


async def test_the_deletion_is_audited_once_without_personal_data(world: World) -> None:
    svc, asker = world.services, world.asker
    deletion = await delete_account(svc, "CN001", "supervisor1")
    assert deletion is not None
    length = await svc.redis.xlen(keys.AUDIT_STREAM)
    assert await delete_account(svc, "CN001", "supervisor1") is None
    assert await svc.redis.xlen(keys.AUDIT_STREAM) == length
    events = [fields for _, fields in await svc.redis.xrange(keys.AUDIT_STREAM)
              if fields[b"event"] == b"privacy_delete"]
    assert len(events) == 1
    event = {k.decode(): v.decode() for k, v in events[0].items()}
    assert event.keys() == {"event", "at", "account_id", "agent", "keys"}
    assert (event["account_id"], event["agent"], event["keys"]) == ("CN001", "supervisor1",
                                                                     str(deletion.total_keys))
    assert not any(private in json.dumps(event, ensure_ascii=False) for private in asker.private)


async def test_a_deletion_stopped_halfway_is_finished_by_running_it_again(world: World,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    svc, asker = world.services, world.asker

    async def stopped(*_: Any) -> dict[str, int]:
        raise ConnectionError("the process was stopped")

    with monkeypatch.context() as patch:
        patch.setattr(data_requests, "_remove_entries", stopped)
        with pytest.raises(ConnectionError):
            await delete_account(svc, "CN001", "supervisor1")
    assert await svc.ledger.get("CN001") is not None  # still there: a second run can find the rest
    deletion = await delete_account(svc, "CN001", "supervisor1")
    assert isinstance(deletion, Deletion) and deletion.entries[keys.HANDOFF_HELD] == 1
    assert not [n for n in await all_names(svc) if asker.conversation in n or "CN001" in n]
    audited = [f for _, f in await svc.redis.xrange(keys.AUDIT_STREAM) if f[b"event"] == b"privacy_delete"]
    assert len(audited) == 1


async def test_an_old_number_s_conversation_goes_too_but_not_one_another_account_now_has(world: World) -> None:
    svc, asker, other = world.services, world.asker, world.other
    old = pseudonym("+8613700000001", svc.settings.hmac_secret)  # the number the ledger had before
    await svc.arrangements.record_reason("CN001", old, "job_loss", "失业了")
    await svc.redis.rpush(keys.tracker_archive(old), svc.vault.seal({"event": "user", "text": "我换号了",
                                                                     "timestamp": time.time()}))
    await svc.records.opt_out(old, "keyword")
    await svc.consents.record("CN001", "visit_address", "declined", other.conversation, "sms", "可以记录吗？",
                              "utter_ask_address_consent_home")  # a record naming a number CN002 now has
    export = await export_account(svc, "CN001")
    assert export is not None
    assert list(export["conversations"]) == [asker.conversation, old]
    assert export["conversations"][old]["transcript"][0]["text"] == "我换号了"
    await delete_account(svc, "CN001", "supervisor1")
    assert not [n for n in await all_names(svc) if old in n]
    assert await svc.records.is_opted_out(other.conversation)
    assert await svc.redis.exists(keys.tracker_archive(other.conversation), keys.handoff(other.conversation)) == 2


async def test_a_long_decisions_stream_is_read_and_pruned_whole(services: Services) -> None:
    for n in range(2500):  # more than one chunk of the stream, the two accounts interleaved
        await services.redis.xadd(keys.CONTACT_DECISIONS, {"account_id": f"CN00{n % 2 + 1}", "channel": "sms",
                                                           "allowed": 1, "reason": f"#{n}", "at": n})
    export = await export_account(services, "CN002")
    assert export is not None and [d["reason"] for d in export["contact_decisions"]] == [
        f"#{n}" for n in range(1, 2500, 2)]
    deletion = await delete_account(services, "CN001", "supervisor1")
    assert deletion is not None and deletion.entries[keys.CONTACT_DECISIONS] == 1250
    assert await services.redis.xlen(keys.CONTACT_DECISIONS) == 1250


async def test_an_unknown_account_is_neither_deleted_nor_audited(world: World) -> None:
    svc = world.services
    names, length = await all_names(svc), await svc.redis.xlen(keys.AUDIT_STREAM)
    assert await delete_account(svc, "NOPE", "supervisor1") is None
    assert await all_names(svc) == names and await svc.redis.xlen(keys.AUDIT_STREAM) == length


async def test_the_log_names_the_account_and_counts_only(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.privacy.data_requests")
    await export_account(world.services, "CN001")
    await delete_account(world.services, "CN001", "supervisor1")
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.privacy.data_requests"]
    assert len(logged) == 2 and all("CN001" in line for line in logged)
    for private in [*world.asker.private, world.asker.conversation]:
        assert not any(private in line for line in logged)


# --- reading the whole database ------------------------------------------------------------------


async def all_names(svc: Services) -> set[str]:
    return {name.decode() async for name in svc.redis.scan_iter(count=1000)}


async def readable_contents(svc: Services) -> dict[str, str]:
    """Every key's name and everything in it as text, each sealed part opened where a data key opens it."""
    found = {}
    for name in await all_names(svc):
        parts = await _parts(svc, name)
        found[name] = "\n".join(_readable(svc.vault, part) for part in parts)
    return found


async def _parts(svc: Services, name: str) -> list[bytes]:
    redis = svc.redis
    kind = (await redis.type(name)).decode()
    if kind == "string":
        return [await redis.get(name)]
    if kind == "hash":
        return [part for item in (await redis.hgetall(name)).items() for part in item]
    if kind == "list":
        return list(await redis.lrange(name, 0, -1))
    if kind == "set":
        return list(await redis.smembers(name))
    if kind == "zset":
        return list(await redis.zrange(name, 0, -1))
    assert kind == "stream", f"{name}: {kind}"
    return [part for _, fields in await redis.xrange(name) for item in fields.items() for part in item]


def _readable(vault: Vault, part: bytes) -> str:
    try:
        return vault.open_bytes(part).decode()
    except InvalidToken:
        return part.decode("utf-8", "replace")
