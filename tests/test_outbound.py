"""Outbound SMS and calls: the real twilio library against the local stand-in.

The stand-in's status callbacks are signed for the public URL and delivered to
the gateway under test, which records them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import LockError
from twilio.base.exceptions import TwilioRestException

from bot.contact.outbound import Sender, record_status, twilio_client
from bot.contact.policy import Attempt
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.edge.gateway import init_app
from bot.ops import twilio_standin
from bot.services import Services


def inside_hours() -> datetime:
    """02:00 UTC today: 10:00 in Shanghai and 18:00 (or 19:00) the day before in Los Angeles."""
    return datetime.now(ZoneInfo("UTC")).replace(hour=2, minute=0, second=0, microsecond=0)


@dataclasses.dataclass
class World:
    settings: Settings
    standin: twilio_standin.StandIn
    sender: Sender
    services: Services


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    standin_server = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                        services.settings.twilio_auth_token))
    await standin_server.start_server()
    settings = dataclasses.replace(services.settings,
                                   twilio_api_base_url=str(standin_server.make_url("")).rstrip("/"))
    async with TestClient(TestServer(init_app(settings))) as gateway:
        state = standin_server.app[twilio_standin.STATE]
        state.deliver_via = (settings.public_base_url, str(gateway.make_url("")).rstrip("/"))
        client = twilio_client(settings)
        yield World(settings, state, Sender(client, settings, services.policy, services.redis,
                                            backoff_seconds=0.01, clock=inside_hours), services)
        await client.http_client.close()
    await standin_server.close()


async def account(world: World, account_id: str) -> Any:
    found = await world.services.ledger.get(account_id)
    assert found is not None
    return found


async def settled(world: World, sid: str, status: str) -> dict[bytes, bytes]:
    for _ in range(100):
        record = await world.services.redis.hgetall(keys.contact_status(sid))
        if record.get(b"status") == status.encode():
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sid} never reached {status}: {record}")


async def test_an_sms_goes_through_the_library_and_its_delivery_is_recorded(world: World) -> None:
    borrower = await account(world, "US001")
    sent = await world.sender.sms(borrower, "Example Bank: please call us on 95588.", "US001:sms:2026-11-30")
    assert sent.outcome == "queued" and sent.sid is not None
    [message] = world.standin.messages
    assert (message["to"], message["from"], message["body"]) == (
        "+14155550123", world.settings.twilio_from, "Example Bank: please call us on 95588.")
    record = await settled(world, sent.sid, "delivered")
    assert record[b"account_id"] == b"US001" and record[b"channel"] == b"sms"
    assert len(await world.services.policy.attempts("US001")) == 1


async def test_the_same_outbox_key_sends_once(world: World) -> None:
    borrower = await account(world, "US001")
    first = await world.sender.sms(borrower, "hello", "US001:sms:day")
    second = await world.sender.sms(borrower, "hello", "US001:sms:day")
    assert (first.outcome, second.outcome) == ("queued", "duplicate")
    assert len(world.standin.messages) == 1


async def test_rate_limits_are_retried_with_backoff(world: World) -> None:
    world.standin.fail_next_with_429 = 2
    sent = await world.sender.sms(await account(world, "US001"), "hello", "k1")
    assert sent.outcome == "queued" and len(world.standin.messages) == 1


async def test_persistent_rate_limiting_fails_and_frees_the_outbox_key(world: World) -> None:
    world.standin.fail_next_with_429 = 10
    with pytest.raises(TwilioRestException):
        await world.sender.sms(await account(world, "US001"), "hello", "k2")
    world.standin.fail_next_with_429 = 0
    assert (await world.sender.sms(await account(world, "US001"), "hello", "k2")).outcome == "queued"


async def test_an_undelivered_message_keeps_twilios_error_code(world: World) -> None:
    world.standin.undeliverable.add("+14155550123")
    sent = await world.sender.sms(await account(world, "US001"), "hello", "k3")
    assert sent.sid is not None
    record = await settled(world, sent.sid, "undelivered")
    assert record[b"error_code"] == b"30003"


async def test_the_policy_is_asked_at_send_time(world: World) -> None:
    borrower = await account(world, "US001")
    await world.services.records.opt_out(pseudonym(borrower.phone, world.settings.hmac_secret), "keyword")
    sent = await world.sender.sms(borrower, "hello", "k4")
    assert sent == dataclasses.replace(sent, outcome="blocked", reason="opted out (keyword)", sid=None)
    assert world.standin.messages == []


async def test_a_body_over_three_segments_is_refused_before_sending(world: World) -> None:
    with pytest.raises(ValueError, match="segments"):
        await world.sender.sms(await account(world, "CN001"), "还" * 202, "k5")
    assert world.standin.messages == []


async def test_a_call_uses_machine_detection_and_its_outcome_is_recorded(world: World) -> None:
    sent = await world.sender.call(await account(world, "CN001"), "CN001:call:day")
    [call] = world.standin.calls
    assert call["machine_detection"] == "DetectMessageEnd"
    assert call["url"] == world.settings.public_base_url + "/twilio/voice"
    assert sent.sid is not None
    await settled(world, sent.sid, "no-answer")


async def test_a_wrong_auth_token_is_refused_by_the_stand_in(world: World, services: Services) -> None:
    settings = dataclasses.replace(world.settings, twilio_auth_token="wrong")
    client = twilio_client(settings)
    sender = Sender(client, settings, services.policy, services.redis, clock=inside_hours)
    with pytest.raises(TwilioRestException) as refused:
        await sender.sms(await account(world, "US001"), "hello", "k6")
    assert refused.value.status == 401
    await client.http_client.close()


async def test_status_callbacks_must_be_signed(world: World, services: Services) -> None:
    async with TestClient(TestServer(init_app(world.settings))) as gateway:
        response = await gateway.post("/twilio/status", data={"MessageSid": "SM" + "0" * 32,
                                                               "MessageStatus": "delivered"})
        assert response.status == 403


async def test_two_workers_cannot_both_place_the_last_call_allowed_today(world: World) -> None:
    borrower = await account(world, "CN001")
    base = inside_hours()
    for n in range(5):
        await world.services.policy.record_attempt("CN001", f"CA-old-{n}",
                                                   Attempt(base - timedelta(minutes=10 * (n + 1)), "call"))
    results = await asyncio.gather(world.sender.call(borrower, "CN001:call:a"),
                                   world.sender.call(borrower, "CN001:call:b"))
    assert sorted(r.outcome for r in results) == ["blocked", "queued"]
    assert len(world.standin.calls) == 1


async def test_a_late_status_does_not_undo_a_final_one(world: World) -> None:
    sent = await world.sender.sms(await account(world, "US001"), "hello", "k7")
    assert sent.sid is not None
    await settled(world, sent.sid, "delivered")
    form = {"MessageSid": sent.sid, "MessageStatus": "sent"}
    assert await record_status(world.services.redis, world.services.policy, form)
    assert (await world.services.redis.hget(keys.contact_status(sent.sid), "status")) == b"delivered"


async def test_a_blocked_send_can_be_taken_later(world: World) -> None:
    borrower = await account(world, "US001")
    conversation = pseudonym(borrower.phone, world.settings.hmac_secret)
    await world.services.records.opt_out(conversation, "keyword")
    assert (await world.sender.sms(borrower, "hello", "k8")).outcome == "blocked"
    await world.services.records.opt_in(conversation)
    assert (await world.sender.sms(borrower, "hello", "k8")).outcome == "queued"


async def test_a_send_whose_policy_decision_fails_frees_its_outbox_key(world: World,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    borrower = await account(world, "US001")

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the policy's store is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(world.services.policy, "decide", unreachable)
        with pytest.raises(ConnectionError):
            await world.sender.sms(borrower, "hello", "k9")
    assert await world.services.redis.get(keys.outbox("k9")) is None
    assert (await world.sender.sms(borrower, "hello", "k9")).outcome == "queued"
    assert len(world.standin.messages) == 1


async def test_a_send_that_cannot_take_the_account_lock_frees_its_outbox_key(world: World) -> None:
    borrower = await account(world, "US001")
    client = twilio_client(world.settings)
    sender = Sender(client, world.settings, world.services.policy, world.services.redis, clock=inside_hours,
                    lock_seconds=0.2)
    held = world.services.redis.lock(keys.outbound_lock("US001"), timeout=10)
    try:
        assert await held.acquire()
        with pytest.raises(LockError):
            await sender.sms(borrower, "hello", "k10")
        await held.release()
        assert (await sender.sms(borrower, "hello", "k10")).outcome == "queued"
        assert len(world.standin.messages) == 1
    finally:
        await client.http_client.close()


async def test_a_visit_tomorrow_is_reminded_once_within_the_policy(world: World) -> None:
    from bot.dialogue.visits import send_reminders
    from bot.domain.visit_times import Preference

    # Tuesday 1 December 2026, 10:00 in Shanghai; CN001's visit is on Wednesday.
    now = datetime(2026, 12, 1, 2, 0, tzinfo=ZoneInfo("UTC"))
    bookings = world.services.bookings
    [slot] = await bookings.offer("c_test", "SH", Preference(day=now.date() + timedelta(days=1)), now, limit=1)
    booking = await bookings.book("c_test", "CN001", slot, {"place": "home", "address": "x", "language": "zh"},
                                  now=now)
    assert booking is not None
    borrower = await account(world, "CN001")
    await world.services.records.promise("CN001", "c_test", now.date() + timedelta(days=5), borrower.installments[0]
                                         .amount_due)  # a promise holds reminders about the debt, not this one
    [sent] = await send_reminders(world.services, world.sender, now)
    assert sent.outcome == "queued"
    [message] = world.standin.messages
    assert message["to"] == "+8613800138000" and message["body"].startswith("示例银行提醒：明天2026年12月2日 09:00")
    for staff in booking.staff:
        assert f"{staff.name} {staff.staff_id}" in message["body"]
    [again] = await send_reminders(world.services, world.sender, now)
    assert again.outcome == "duplicate" and len(world.standin.messages) == 1


async def test_a_visit_reminder_respects_an_opt_out(world: World) -> None:
    from bot.dialogue.visits import send_reminders
    from bot.domain.visit_times import Preference

    now = datetime(2026, 12, 1, 2, 0, tzinfo=ZoneInfo("UTC"))
    bookings = world.services.bookings
    [slot] = await bookings.offer("c_test", "SH", Preference(day=now.date() + timedelta(days=1)), now, limit=1)
    await bookings.book("c_test", "CN001", slot, {"language": "zh"}, now=now)
    borrower = await account(world, "CN001")
    await world.services.records.opt_out(pseudonym(borrower.phone, world.settings.hmac_secret), "keyword")
    [sent] = await send_reminders(world.services, world.sender, now)
    assert (sent.outcome, sent.reason) == ("blocked", "opted out (keyword)")
    assert world.standin.messages == []
