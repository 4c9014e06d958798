"""The gateway's edge behaviour: signatures, malformed input, replays, keywords.

Rasa is replaced by FakeRasa (conftest), a small local HTTP server that records
what it receives; the whole path with the real Rasa is in tests/integration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.contact.sms import segments
from bot.core import catalog, keys
from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.edge.gateway import init_app
from bot.ops.chat import messages_in, signed_sms
from bot.services import Services
from tests.conftest import ROOT, FakeRasa, free_port

CN_PHONE = "+8613800138000"
US_PHONE = "+14155550123"


@pytest.fixture
async def client(services: Services, rasa: tuple[FakeRasa, str]) -> AsyncIterator[TestClient]:
    settings = dataclasses.replace(services.settings, rasa_url=rasa[1], action_url=rasa[1])
    async with TestClient(TestServer(init_app(settings))) as test_client:
        yield test_client


async def post_sms(client: TestClient, settings: Settings, phone: str, body: str, sid: str | None = None,
                   **overrides: str) -> Any:
    form, signature = signed_sms(settings, phone, body, sid)
    headers = {"X-Twilio-Signature": overrides.pop("signature", signature)}
    form.update(overrides)
    return await client.post("/twilio/sms", data=form, headers=headers)


async def test_a_signed_sms_takes_one_turn_under_a_pseudonym(client: TestClient, services: Services,
                                                             rasa: tuple[FakeRasa, str]) -> None:
    response = await post_sms(client, services.settings, CN_PHONE, "你好", "SM" + "c" * 32)
    assert response.status == 200
    assert response.content_type == "text/xml"
    body = await response.text()
    assert body == '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hello from the bot.</Message></Response>'
    assert rasa[0].received == [{"sender": pseudonym(CN_PHONE, services.settings.hmac_secret), "message": "你好",
                                 "message_id": "SM" + "c" * 32, "metadata": {"channel": "sms"}}]


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
async def test_missing_or_wrong_signature_is_403(client: TestClient, services: Services, signature: str,
                                                 rasa: tuple[FakeRasa, str]) -> None:
    response = await post_sms(client, services.settings, CN_PHONE, "hi", signature=signature)
    assert response.status == 403
    assert rasa[0].received == []


async def test_a_signature_for_other_fields_is_403(client: TestClient, services: Services) -> None:
    form, signature = signed_sms(services.settings, CN_PHONE, "hi")
    form["Body"] = "tampered"
    response = await client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403


async def test_a_signature_for_another_endpoint_is_403(client: TestClient, services: Services) -> None:
    form, signature = signed_sms(services.settings, CN_PHONE, "hi")
    response = await client.post("/twilio/sms?x=1", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403


async def test_json_body_is_400(client: TestClient) -> None:
    response = await client.post("/twilio/sms", json={"From": CN_PHONE}, headers={"X-Twilio-Signature": "x"})
    assert response.status == 400


@pytest.mark.parametrize(("field", "value"), [("MessageSid", ""), ("MessageSid", "../etc"), ("From", "13800138000"),
                                              ("From", "")])
async def test_signed_but_malformed_fields_are_400(client: TestClient, services: Services, field: str,
                                                   value: str) -> None:
    form, _ = signed_sms(services.settings, CN_PHONE, "hi")
    form[field] = value
    signature = RequestValidator(services.settings.twilio_auth_token).compute_signature(
        services.settings.public_base_url + "/twilio/sms", form)
    response = await client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 400


async def test_oversized_body_is_413(client: TestClient, services: Services, rasa: tuple[FakeRasa, str]) -> None:
    response = await post_sms(client, services.settings, CN_PHONE, "x" * (65 * 1024))
    assert response.status == 413
    assert rasa[0].received == []


async def test_a_replayed_message_sid_gets_the_same_answer_and_no_second_turn(
        client: TestClient, services: Services, rasa: tuple[FakeRasa, str]) -> None:
    sid = "SM" + "a" * 32
    first = await (await post_sms(client, services.settings, US_PHONE, "hello", sid)).text()
    second = await (await post_sms(client, services.settings, US_PHONE, "hello", sid)).text()
    assert first == second
    assert len(rasa[0].received) == 1


async def test_unknown_sender_hears_nothing_about_any_account(client: TestClient, services: Services,
                                                              rasa: tuple[FakeRasa, str]) -> None:
    response = await post_sms(client, services.settings, "+8613700000000", "我欠多少钱")
    assert messages_in(await response.text()) == [
        "您好，这里是示例银行。我们的记录中没有这个号码。如您是我行客户，请致电95588。"]
    assert rasa[0].received == []


@pytest.mark.parametrize(("body", "phone", "expected"), [
    ("STOP", US_PHONE, "You're unsubscribed and will get no more reminders from Example Bank. "
                       "Reply START to subscribe again."),
    ("退订", CN_PHONE, "您已退订示例银行的提醒短信。回复START可重新订阅。"),
    ("td", CN_PHONE, "您已退订示例银行的提醒短信。回复START可重新订阅。"),
])
async def test_opt_out_keywords_are_handled_at_the_edge(client: TestClient, services: Services,
                                                        rasa: tuple[FakeRasa, str], body: str, phone: str,
                                                        expected: str) -> None:
    response = await post_sms(client, services.settings, phone, body)
    assert messages_in(await response.text()) == [expected]
    assert await services.records.is_opted_out(pseudonym(phone, services.settings.hmac_secret))
    assert rasa[0].received == []


@pytest.mark.parametrize("first", ["STOP", "conversation"])
async def test_an_opt_out_is_confirmed_once_and_a_later_stop_changes_nothing(
        client: TestClient, services: Services, rasa: tuple[FakeRasa, str], first: str) -> None:
    conversation = pseudonym(US_PHONE, services.settings.hmac_secret)
    if first == "STOP":
        assert len(messages_in(await (await post_sms(client, services.settings, US_PHONE, "STOP")).text())) == 1
    else:
        await services.records.opt_out(conversation, "conversation")
    for again in ("stop", "Opt out", "UNSUBSCRIBE"):  # TCPA-REVOCATION-2025.confirmation: one text at most
        assert messages_in(await (await post_sms(client, services.settings, US_PHONE, again)).text()) == []
    source = await services.redis.hget(keys.opt_out(conversation), "source")
    assert source == (b"keyword" if first == "STOP" else b"conversation")  # a spoken opt-out is not narrowed
    assert rasa[0].received == []


@pytest.mark.parametrize("name", ["utter_opted_out", "utter_opted_out_call"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_an_opt_out_confirmation_asks_nothing(name: str, language: str) -> None:
    for channel in (None, "voice"):
        text = catalog.render(catalog.responses(), name, language, channel)
        assert "?" not in text and "？" not in text and "吗" not in text, text


async def test_start_lifts_a_keyword_opt_out_only(client: TestClient, services: Services) -> None:
    await post_sms(client, services.settings, US_PHONE, "STOP")
    answer = messages_in(await (await post_sms(client, services.settings, US_PHONE, "START")).text())
    assert answer == ["You're subscribed again to reminders from Example Bank. Reply STOP to unsubscribe."]
    conversation = pseudonym(US_PHONE, services.settings.hmac_secret)
    assert not await services.records.is_opted_out(conversation)
    await services.records.opt_out(conversation, "conversation")
    answer = messages_in(await (await post_sms(client, services.settings, US_PHONE, "START")).text())
    assert answer[0].startswith("Thank you. A colleague needs to confirm this")
    assert await services.records.is_opted_out(conversation)


async def test_help_keyword(client: TestClient, services: Services) -> None:
    answer = messages_in(await (await post_sms(client, services.settings, US_PHONE, "HELP")).text())
    assert answer == ["Example Bank loan assistant. Call 95588 for help. Reply STOP to unsubscribe."]


async def test_empty_body_gets_an_empty_answer(client: TestClient, services: Services,
                                               rasa: tuple[FakeRasa, str]) -> None:
    response = await post_sms(client, services.settings, US_PHONE, "   ")
    assert response.status == 200
    assert messages_in(await response.text()) == []
    assert rasa[0].received == []


async def test_replies_are_packed_within_three_segments(client: TestClient, services: Services,
                                                        rasa: tuple[FakeRasa, str]) -> None:
    rasa[0].replies = ["您好，这里是示例银行的智能助理。" * 7] * 3  # 112 characters: 2 segments each
    answer = messages_in(await (await post_sms(client, services.settings, CN_PHONE, "你好")).text())
    assert len(answer) == 3
    assert all(segments(text) <= 3 for text in answer)


async def test_healthz_reflects_every_component(client: TestClient, rasa: tuple[FakeRasa, str]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"redis": "ok", "rasa": "ok", "actions": "ok"}
    rasa[0].up = False
    response = await client.get("/healthz")
    assert response.status == 503
    assert await response.json() == {"redis": "ok", "rasa": "down", "actions": "down"}


async def test_webhook_keys_hold_no_phone_number(client: TestClient, services: Services) -> None:
    await post_sms(client, services.settings, US_PHONE, "hello")
    names = [k.decode() for k in await services.redis.keys("*")]
    assert not any("4155550123" in name for name in names)


async def test_an_unknown_charset_is_400(client: TestClient, services: Services) -> None:
    form, signature = signed_sms(services.settings, CN_PHONE, "hi")
    body = "&".join(f"{k}={v}" for k, v in form.items()).replace("+", "%2B")
    response = await client.post("/twilio/sms", data=body.encode(), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded; charset=bogus"})
    assert response.status == 400


async def test_redis_down_is_503(services: Services, rasa: tuple[FakeRasa, str]) -> None:
    from tests.conftest import free_port

    settings = dataclasses.replace(services.settings, rasa_url=rasa[1], action_url=rasa[1],
                                   redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with TestClient(TestServer(init_app(settings))) as offline:
        response = await post_sms(offline, settings, US_PHONE, "hello")
        assert response.status == 503
        assert (await offline.get("/healthz")).status == 503


async def test_edge_replies_follow_the_language_the_borrower_chose(client: TestClient, services: Services) -> None:
    await services.records.set_language(pseudonym(CN_PHONE, services.settings.hmac_secret), "en")
    answer = messages_in(await (await post_sms(client, services.settings, CN_PHONE, "HELP")).text())
    assert answer == ["Example Bank loan assistant. Call 95588 for help. Reply STOP to unsubscribe."]


@pytest.mark.parametrize("forgotten", [False, True])
async def test_a_turn_reads_the_account_language_and_holder_whether_or_not_redis_knows_the_script(
        client: TestClient, services: Services, rasa: tuple[FakeRasa, str], forgotten: bool) -> None:
    conversation = pseudonym(CN_PHONE, services.settings.hmac_secret)
    await post_sms(client, services.settings, CN_PHONE, "你好")  # the first lookup loads the ledger's script
    account = await services.ledger.for_conversation(conversation)
    assert account is not None
    await services.records.set_language(conversation, "en")
    await services.redis.delete(keys.last_reply(account.account_id))
    if forgotten:  # as after a Redis restart
        await services.redis.script_flush()
    answer = messages_in(await (await post_sms(client, services.settings, CN_PHONE, "HELP")).text())
    assert answer == ["Example Bank loan assistant. Call 95588 for help. Reply STOP to unsubscribe."]
    assert int(await services.redis.get(keys.last_reply(account.account_id))) > 0  # a reply, noted
    assert messages_in(await (await post_sms(client, services.settings, CN_PHONE, "hi")).text()) == [
        "Hello from the bot."]  # a known borrower: on to Rasa
    assert messages_in(await (await post_sms(client, services.settings, "+8613700000000", "你好")).text()) == [
        "您好，这里是示例银行。我们的记录中没有这个号码。如您是我行客户，请致电95588。"]


def signed_status(settings: Settings, form: dict[str, str]) -> dict[str, str]:
    url = settings.public_base_url + "/twilio/status"
    return {"X-Twilio-Signature": RequestValidator(settings.twilio_auth_token).compute_signature(url, form)}


async def test_a_status_for_a_sid_we_did_not_send_is_accepted_and_ignored(client: TestClient,
                                                                          services: Services) -> None:
    form = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    response = await client.post("/twilio/status", data=form, headers=signed_status(services.settings, form))
    assert response.status == 204
    assert not await services.redis.exists("contact:status:" + form["MessageSid"])


@pytest.mark.parametrize("form", [{"MessageSid": "SM" + "c" * 32}, {"MessageStatus": "sent"},
                                  {"CallSid": "XX", "CallStatus": "completed"}])
async def test_a_malformed_status_callback_is_400(client: TestClient, services: Services,
                                                  form: dict[str, str]) -> None:
    response = await client.post("/twilio/status", data=form, headers=signed_status(services.settings, form))
    assert response.status == 400


@pytest.mark.parametrize("minutes", [0, 30])
async def test_the_gateway_runs_visit_reminder_rounds_unless_switched_off(
        services: Services, rasa: tuple[FakeRasa, str], monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    from bot.dialogue import visits

    rounds: list[Any] = []

    async def one_round(svc: Services, sender: Any) -> list[Any]:
        rounds.append(sender)
        return []

    monkeypatch.setattr(visits, "send_reminders", one_round)
    settings = dataclasses.replace(services.settings, rasa_url=rasa[1], visit_reminder_minutes=minutes)
    async with TestClient(TestServer(init_app(settings))):
        for _ in range(50):
            if rounds:
                break
            await asyncio.sleep(0.02)
    assert len(rounds) == (1 if minutes else 0)  # one round at start, the next in 30 minutes


async def test_a_reply_from_a_borrower_is_timed_for_campaigns(client: TestClient, services: Services,
                                                              rasa: tuple[FakeRasa, str]) -> None:
    from bot.core import keys

    await post_sms(client, services.settings, CN_PHONE, "STOP")
    assert int(await services.redis.get(keys.last_reply("CN001"))) > 0
    await post_sms(client, services.settings, "+447700900123", "hello")  # a stranger has no account to time
    assert await services.redis.keys("contact:last-reply:*") == [b"contact:last-reply:CN001"]


def test_the_gateway_process_stops_at_once_when_told_to(test_env: dict[str, str], tmp_path: Path) -> None:
    """A deploy sends SIGTERM and kills a few seconds later. aiohttp waits for every running task before
    the app's cleanup: the background loops (kept turns, reminders, retention) used to hold the process
    for its whole 60 s shutdown timeout."""
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen([sys.executable, "-m", "bot", "gateway"], cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT,
                                   env={"PATH": os.environ.get("PATH", ""), **test_env, "GATEWAY_PORT": str(port)})
    try:
        _wait_until_listening(port, gateway)
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=20) == 0, log.read_text()
    finally:
        gateway.kill()


def _wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert process.poll() is None, "the gateway exited at start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers (503 while Rasa is away)
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not listen")


async def test_what_the_gateway_loaded_at_start_is_kept_out_of_full_collections(
        services: Services, rasa: tuple[FakeRasa, str]) -> None:
    """bot/core/heap.py: a full collection over everything start-up loaded stalled every turn of the process."""
    gc.unfreeze()
    try:
        settings = dataclasses.replace(services.settings, rasa_url=rasa[1], action_url=rasa[1])
        async with TestClient(TestServer(init_app(settings))):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
