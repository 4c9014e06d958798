"""The agent console over HTTP: sign-in, authorization on every endpoint, CSRF, escaping, claims, replies.

The gateway runs in-process with FakeRasa (conftest) standing in for Rasa's REST channel and
tracker API, and the Twilio stand-in receiving SMS through the real twilio library. The whole
path in a real browser with the real Rasa is in tests/integration/test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from bot.console.desk import SESSION_COOKIE, flash_text
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain import agents
from bot.domain.agents import MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_USERNAME
from bot.edge.gateway import drain, init_app
from bot.ops import twilio_standin
from bot.ops.chat import messages_in, signed_sms
from bot.services import Services
from tests.conftest import FakeRasa
from tests.test_campaign import daytime_zone, phone, write_ledger

PASSWORD = "correct horse battery"
EN_ACCOUNT, ZH_ACCOUNT = "T00000", "T00001"


@dataclass
class World:
    services: Services
    client: TestClient
    rasa: FakeRasa
    standin: twilio_standin.StandIn

    def conversation(self, n: int = 0) -> str:
        return pseudonym(phone(n), self.services.settings.hmac_secret)


@pytest.fixture
async def world(services: Services, rasa: tuple[FakeRasa, str], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    # Cheap argon2 parameters for speed here; the console runs with the library's defaults.
    monkeypatch.setattr(agents, "PasswordHasher", functools.partial(PasswordHasher, time_cost=1, memory_cost=1024))
    services.__dict__.pop("agents", None)
    await services.ledger.import_files(*write_ledger(tmp_path, 4, daytime_zone()), date.today())
    for username, role in (("alice", "agent"), ("bob", "agent"), ("sue", "supervisor")):
        await services.agents.add(username, PASSWORD, role)
    fake, rasa_url = rasa

    async def archive(conversation: str, events: list[dict[str, Any]]) -> None:
        await services.redis.rpush(keys.tracker_archive(conversation), *(services.vault.seal(e) for e in events))

    fake.archive = archive
    standin_server = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                        services.settings.twilio_auth_token))
    await standin_server.start_server()
    settings = dataclasses.replace(services.settings, rasa_url=rasa_url, action_url=rasa_url,
                                   twilio_api_base_url=str(standin_server.make_url("")).rstrip("/"))
    async with TestClient(TestServer(init_app(settings))) as client:
        yield World(services, client, fake, standin_server.app[twilio_standin.STATE])
    await standin_server.close()


class Desk:
    """One agent's browser: the session cookie (Secure, so sent by hand over plain HTTP) and CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookie = ""
        self.csrf = ""

    async def login(self, username: str, password: str = PASSWORD) -> Any:
        page = await self.client.get("/agent/login")
        login_token = page.cookies["__Host-console-login"].value
        response = await self.client.post("/agent/login", allow_redirects=False, data={
            "username": username, "password": password, "csrf": login_token,
        }, headers={"Cookie": f"__Host-console-login={login_token}"})
        if SESSION_COOKIE in response.cookies:
            self.cookie = response.cookies[SESSION_COOKIE].value
            self.csrf = _csrf(await (await self.get("/agent/")).text())
        return response

    async def get(self, path: str) -> Any:
        return await self.client.get(path, allow_redirects=False, headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"})

    async def post(self, path: str, csrf: str | None = None, headers: dict[str, str] | None = None,
                   **fields: str) -> Any:
        data = {"csrf": self.csrf if csrf is None else csrf, **fields}
        return await self.client.post(path, data=data, allow_redirects=False,
                                      headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}", **(headers or {})})


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def signed_in(world: World, username: str) -> Desk:
    desk = Desk(world.client)
    response = await desk.login(username)
    assert response.status == 303, await response.text()
    return desk


async def handed_off(world: World, n: int = 0, reason: str = "request_human") -> str:
    conversation = world.conversation(n)
    await world.services.records.hand_off(conversation, f"T{n:05d}", reason)
    return conversation


async def sms(world: World, n: int, body: str) -> list[str]:
    form, signature = signed_sms(world.services.settings, phone(n), body)
    response = await world.client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200, await response.text()
    return messages_in(await response.text())


def flash(response: Any) -> str:
    """The message a redirect carries to the next page, as the page shows it."""
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return flash_text({name: values[0] for name, values in query.items()})


async def audit_events(world: World) -> list[dict[str, str]]:
    entries = await world.services.redis.xrange(keys.AUDIT_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


# --- signing in ----------------------------------------------------------------------------------


async def test_the_session_cookie_is_secure_http_only_and_same_site_strict(world: World) -> None:
    response = await Desk(world.client).login("alice")
    assert response.status == 303 and response.headers["Location"] == "/agent/"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    stored = await world.services.redis.keys("agent:session:*")
    assert len(stored) == 1 and cookie.value.encode() not in stored[0]  # only the token's hash is kept


async def test_passwords_are_stored_as_argon2_hashes(world: World) -> None:
    stored = await world.services.redis.hget(keys.agent("alice"), "password")
    assert stored.startswith(b"$argon2id$") and PASSWORD.encode() not in stored


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong password!"), ("nobody", PASSWORD),
                                                    ("ALICE'--", PASSWORD), ("", "")])
async def test_wrong_credentials_are_refused_alike(world: World, username: str, password: str) -> None:
    response = await Desk(world.client).login(username, password)
    assert response.status == 401
    assert "wrong username or password" in await response.text()
    assert SESSION_COOKIE not in response.cookies


async def test_a_login_form_without_its_token_is_refused(world: World) -> None:
    response = await world.client.post("/agent/login", data={"username": "alice", "password": PASSWORD})
    assert response.status == 403
    response = await world.client.post("/agent/login", data={"username": "alice", "password": PASSWORD,
                                                             "csrf": "forged"},
                                       headers={"Cookie": "__Host-console-login=other"})
    assert response.status == 403


async def test_repeated_failures_lock_the_username_even_with_the_right_password(world: World) -> None:
    for _ in range(MAX_FAILURES_PER_USERNAME):
        assert (await Desk(world.client).login("alice", "wrong password!")).status == 401
    locked = await Desk(world.client).login("alice", PASSWORD)
    assert locked.status == 429 and "too many failed logins" in await locked.text()
    assert (await Desk(world.client).login("alice", PASSWORD)).status == 429
    assert (await Desk(world.client).login("bob")).status == 303  # another agent is not locked out
    events = [e["event"] for e in await audit_events(world)]
    # Audited once per lock, however often the locked door is tried.
    assert events.count("login_failed") == MAX_FAILURES_PER_USERNAME and events.count("login_locked") == 1


async def test_one_address_guessing_many_usernames_is_locked_out(world: World) -> None:
    for n in range(MAX_FAILURES_PER_ADDRESS):
        assert (await Desk(world.client).login(f"guess{n}", "wrong password!")).status == 401
    assert (await Desk(world.client).login("sue")).status == 429


async def test_logout_ends_the_session(world: World) -> None:
    desk = await signed_in(world, "alice")
    assert (await desk.post("/agent/logout")).status == 303
    assert (await desk.get("/agent/")).status == 303


async def test_a_removed_account_loses_its_session(world: World) -> None:
    desk = await signed_in(world, "bob")
    await world.services.agents.remove("bob")
    assert (await desk.get("/agent/")).headers["Location"] == "/agent/login"


# --- no page without a session, no form without its token -------------------------------------------


async def test_no_endpoint_answers_without_a_session(world: World) -> None:
    conversation = await handed_off(world)
    pages = ["/agent/", f"/agent/c/{conversation}"]
    parts = ["/agent/queue/rows", f"/agent/c/{conversation}/transcript", "/agent/ws"]
    posts = [f"/agent/c/{conversation}/{action}"
             for action in ("claim", "reply", "verify", "handback", "close", "reassign")]
    posts.append("/agent/logout")
    for path in pages:
        response = await world.client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/agent/login"), path
    for path in parts:
        assert (await world.client.get(path)).status == 401, path
    for path in posts:
        assert (await world.client.post(path, data={"csrf": "x"})).status == 401, path
    forged = Desk(world.client)
    forged.cookie = "forged-session-token"
    assert (await forged.get("/agent/")).status == 303
    assert await world.services.handoffs.holder(conversation) is None


@pytest.mark.parametrize("csrf", ["", "forged-token", "伪造的令牌"])
async def test_forms_without_the_sessions_csrf_token_are_refused(world: World, csrf: str) -> None:
    conversation = await handed_off(world)
    desk = await signed_in(world, "alice")
    response = await desk.post(f"/agent/c/{conversation}/claim", csrf=csrf)
    assert response.status == 403
    assert await world.services.handoffs.holder(conversation) is None


async def test_another_sessions_csrf_token_is_refused(world: World) -> None:
    conversation = await handed_off(world)
    alice, bob = await signed_in(world, "alice"), await signed_in(world, "bob")
    assert (await alice.post(f"/agent/c/{conversation}/claim", csrf=bob.csrf)).status == 403


async def test_a_cross_origin_form_is_refused_even_with_the_token(world: World) -> None:
    conversation = await handed_off(world)
    desk = await signed_in(world, "alice")
    response = await desk.post(f"/agent/c/{conversation}/claim", headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert await world.services.handoffs.holder(conversation) is None


async def test_pages_carry_a_strict_content_security_policy(world: World) -> None:
    desk = await signed_in(world, "alice")
    for response in (await desk.get("/agent/"), await world.client.get("/agent/login")):
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


# --- the queue and claims ------------------------------------------------------------------------------


async def test_the_queue_shows_reason_priority_and_waiting_time(world: World) -> None:
    await handed_off(world, 0, "complaint")
    await handed_off(world, 1, "fallback")
    desk = await signed_in(world, "alice")
    html = await (await desk.get("/agent/")).text()
    assert html.index("complaint") < html.index("fallback")  # priority 1 before 3
    assert "T00000" in html and "0 min" in html
    filtered = await (await desk.get("/agent/queue/rows?reason=fallback")).text()
    assert "T00001" in filtered and "T00000" not in filtered
    assert {"event": "view_queue", "agent": "alice"}.items() <= (await audit_events(world))[-1].items()


async def test_two_agents_claiming_at_once_one_wins(world: World) -> None:
    conversation = await handed_off(world)
    desks = [await signed_in(world, name) for name in ("alice", "bob", "sue")] * 4
    responses = await asyncio.gather(*(d.post(f"/agent/c/{conversation}/claim") for d in desks))
    winners = [r.headers["Location"] for r in responses if r.headers["Location"].startswith("/agent/c/")]
    assert len(winners) == 1
    holder = await world.services.handoffs.holder(conversation)
    assert holder in ("alice", "bob", "sue")
    assert await world.services.redis.zcard(keys.HANDOFF_QUEUE) == 0
    assert [e["event"] for e in await audit_events(world)].count("claim") == 1


async def test_many_simultaneous_claims_in_redis_give_one_holder(world: World) -> None:
    conversation = await handed_off(world)
    results = await asyncio.gather(*(world.services.handoffs.claim(conversation, f"agent{n}") for n in range(200)))
    assert results.count(True) == 1


async def test_an_agent_cannot_read_or_act_on_a_conversation_another_agent_holds(world: World) -> None:
    conversation = await handed_off(world)
    alice, bob = await signed_in(world, "alice"), await signed_in(world, "bob")
    assert (await alice.post(f"/agent/c/{conversation}/claim")).status == 303
    base = f"/agent/c/{conversation}"
    assert (await bob.get(base)).status == 403
    assert (await bob.get(base + "/transcript")).status == 403
    assert (await bob.post(base + "/reply", text="hello", nonce="n" * 20)).status == 403
    assert (await bob.post(base + "/handback")).status == 403
    assert (await bob.post(base + "/verify")).status == 403
    assert (await bob.post(base + "/close", outcome="other", note="")).status == 403
    assert (await bob.post(base + "/reassign", agent="bob")).status == 403
    assert (await bob.post(base + "/claim")).headers["Location"].startswith("/agent/?")
    assert await world.services.handoffs.holder(conversation) == "alice"
    assert world.standin.messages == []
    rows = await (await bob.get("/agent/queue/rows")).text()
    assert "T00000" not in rows  # not even listed for him
    assert [e["event"] for e in await audit_events(world)].count("denied") == 7


async def test_an_agent_cannot_read_a_waiting_conversation_before_claiming_it(world: World) -> None:
    conversation = await handed_off(world)
    alice = await signed_in(world, "alice")
    assert (await alice.get(f"/agent/c/{conversation}")).status == 403


async def test_a_supervisor_sees_everything_and_reassigns(world: World) -> None:
    conversation = await handed_off(world)
    alice, sue = await signed_in(world, "alice"), await signed_in(world, "sue")
    await alice.post(f"/agent/c/{conversation}/claim")
    rows = await (await sue.get("/agent/queue/rows")).text()
    assert "T00000" in rows and "alice" in rows
    assert (await sue.get(f"/agent/c/{conversation}")).status == 200
    response = await sue.post(f"/agent/c/{conversation}/reassign", agent="bob")
    assert response.status == 303
    assert await world.services.handoffs.holder(conversation) == "bob"
    assert (await alice.get(f"/agent/c/{conversation}")).status == 403
    assert (await sue.post(f"/agent/c/{conversation}/reassign", agent="mallory")).status == 303
    assert await world.services.handoffs.holder(conversation) == "bob"


# --- the conversation ---------------------------------------------------------------------------------


async def claimed(world: World, username: str = "alice", n: int = 0) -> tuple[Desk, str]:
    conversation = await handed_off(world, n)
    desk = await signed_in(world, username)
    assert (await desk.post(f"/agent/c/{conversation}/claim")).headers["Location"] == f"/agent/c/{conversation}"
    return desk, conversation


async def test_borrower_text_is_escaped_never_run(world: World) -> None:
    desk, conversation = await claimed(world)
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    await sms(world, 0, attack)
    for path in (f"/agent/c/{conversation}", f"/agent/c/{conversation}/transcript"):
        html = await (await desk.get(path)).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html


async def test_while_an_agent_holds_it_the_bot_is_quiet_and_the_message_is_recorded(world: World) -> None:
    _, conversation = await claimed(world)
    assert world.rasa.events[conversation] == [{"event": "pause"}]
    assert await sms(world, 0, "我想和人工说") == []
    assert world.rasa.received == []  # the REST channel (the bot) never saw it
    recorded = world.rasa.events[conversation][-1]
    assert (recorded["event"], recorded["text"], recorded["metadata"]) == ("user", "我想和人工说", {"channel": "sms"})


async def test_stop_still_works_while_an_agent_holds_the_conversation(world: World) -> None:
    _, conversation = await claimed(world)
    replies = await sms(world, 0, "STOP")
    assert replies and await world.services.records.is_opted_out(conversation)
    assert [e["event"] for e in world.rasa.events[conversation][-2:]] == ["user", "bot"]


async def test_a_message_rasa_cannot_record_is_kept_and_reaches_the_agent_later(world: World) -> None:
    _, conversation = await claimed(world)
    world.rasa.up = False
    form, signature = signed_sms(world.services.settings, phone(0), "hello?")
    response = await world.client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 200 and messages_in(await response.text()) == []
    assert await world.services.pending_turns.waiting(conversation)
    world.rasa.up = True
    await drain(world.client.app)  # the gateway's own drain loop may be the one to replay it
    for _ in range(100):
        if not await world.services.pending_turns.waiting(conversation):
            break
        await asyncio.sleep(0.05)
    assert [e["text"] for e in world.rasa.events[conversation] if e["event"] == "user"] == ["hello?"]


async def test_a_call_while_an_agent_holds_the_conversation_is_told_so(world: World) -> None:
    from twilio.request_validator import RequestValidator

    await claimed(world)
    settings = world.services.settings
    form = {"CallSid": "CA" + "1" * 32, "From": phone(0), "To": settings.twilio_from, "CallStatus": "ringing"}
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(
        settings.public_base_url + "/twilio/voice", form)
    response = await world.client.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": signature})
    assert "already looking after your conversation by text" in await response.text()
    assert world.rasa.received == []


async def test_the_conversation_view_shows_transcript_summary_and_masked_data(world: World) -> None:
    desk, conversation = await claimed(world)
    await sms(world, 0, "Is anyone there?")
    html = await (await desk.get(f"/agent/c/{conversation}")).text()
    assert "Is anyone there?" in html and "An agent took over" in html
    assert "not verified" in html and "(verify first)" in html and "Test 0" not in html
    assert phone(0) not in html and "******" + phone(0)[-4:] in html
    assert "1980-01-01" not in html and "1234" not in html.replace("******", "")  # verification answers
    assert "SMS reminder now" in html and "Hello, this is alice from Example Bank" in html
    events = await audit_events(world)
    assert {"event": "view_conversation", "agent": "alice", "account_id": EN_ACCOUNT}.items() <= events[-1].items()


async def test_a_supervisor_sees_the_full_number(world: World) -> None:
    _, conversation = await claimed(world)
    sue = await signed_in(world, "sue")
    assert phone(0) in await (await sue.get(f"/agent/c/{conversation}")).text()


async def test_quick_replies_are_in_the_borrowers_language(world: World) -> None:
    desk, conversation = await claimed(world, n=1)
    html = await (await desk.get(f"/agent/c/{conversation}")).text()
    assert "您好，我是示例银行的alice" in html


async def test_a_reply_goes_out_by_sms_once_and_into_the_transcript(world: World) -> None:
    desk, conversation = await claimed(world)
    page = await (await desk.get(f"/agent/c/{conversation}")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    text = "您好 — we can split it into 3 payments."
    first = await desk.post(f"/agent/c/{conversation}/reply", text=text, nonce=nonce)
    again = await desk.post(f"/agent/c/{conversation}/reply", text=text, nonce=nonce)  # a double click
    assert (flash(first), flash(again)) == ("Sent.", "That reply was already sent.")
    assert [(m["to"], m["body"]) for m in world.standin.messages] == [(phone(0), text)]
    assert world.rasa.events[conversation][-1]["metadata"] == {"agent": "alice"}
    transcript = await (await desk.get(f"/agent/c/{conversation}/transcript")).text()
    assert "Agent alice" in transcript and "split it into 3 payments" in transcript


async def test_an_opted_out_borrower_gets_no_reply_and_the_agent_is_told_why(world: World) -> None:
    desk, conversation = await claimed(world)
    await world.services.records.opt_out(conversation, "agent")
    response = await desk.post(f"/agent/c/{conversation}/reply", text="Hello", nonce="a" * 20)
    assert flash(response) == "Not sent: opted out (agent)."
    assert world.standin.messages == []


@pytest.mark.parametrize("text", ["", "   ", "x" * 451])
async def test_empty_or_oversized_replies_are_refused(world: World, text: str) -> None:
    desk, conversation = await claimed(world)
    response = await desk.post(f"/agent/c/{conversation}/reply", text=text, nonce="a" * 20)
    assert flash(response).startswith("Write a reply") and world.standin.messages == []


async def test_hand_back_gives_the_bot_the_next_message(world: World) -> None:
    desk, conversation = await claimed(world)
    assert (await desk.post(f"/agent/c/{conversation}/handback")).headers["Location"].startswith("/agent/?")
    assert [e["event"] for e in world.rasa.events[conversation][-3:]] == ["resume", "slot", "slot"]
    assert await world.services.handoffs.item(conversation) is None
    assert await sms(world, 0, "hi again") == ["Hello from the bot."]
    assert world.rasa.received[-1]["message"] == "hi again"


async def test_closing_with_a_promise_records_it_for_the_ledger_view(world: World) -> None:
    desk, conversation = await claimed(world)
    day = (date.today() + timedelta(days=5)).isoformat()
    response = await desk.post(f"/agent/c/{conversation}/close", outcome="promise", note="will pay Friday",
                               promise_date=day)
    assert flash(response) == "Closed: promise."
    promise = await world.services.records.get_promise(EN_ACCOUNT)
    assert promise is not None and promise["date"] == day
    outcomes = await world.services.handoffs.outcomes(EN_ACCOUNT)
    assert [(o["outcome"], o["agent"], o["note"]) for o in outcomes] == [("promise", "alice", "will pay Friday")]
    stored = await world.services.redis.lindex(keys.agent_outcomes(EN_ACCOUNT), 0)
    assert b"Friday" not in stored  # the note is sealed
    assert "will pay Friday" not in str(await audit_events(world))


@pytest.mark.parametrize("day", ["", "2026-02-30", "not a date", "1999-01-01"])
async def test_a_promise_outcome_needs_a_real_date_in_the_window(world: World, day: str) -> None:
    desk, conversation = await claimed(world)
    response = await desk.post(f"/agent/c/{conversation}/close", outcome="promise", note="", promise_date=day)
    assert response.headers["Location"].startswith(f"/agent/c/{conversation}?")
    assert await world.services.handoffs.holder(conversation) == "alice"  # still open
    assert await world.services.records.get_promise(EN_ACCOUNT) is None


async def test_an_unknown_outcome_is_refused(world: World) -> None:
    desk, conversation = await claimed(world)
    response = await desk.post(f"/agent/c/{conversation}/close", outcome="paid_in_full", note="")
    assert flash(response).startswith("outcome must be one of")
    assert await world.services.handoffs.holder(conversation) == "alice"


async def test_a_wrong_number_outcome_stops_contact_and_a_dispute_holds_reminders(world: World) -> None:
    desk, conversation = await claimed(world, n=0)
    await desk.post(f"/agent/c/{conversation}/close", outcome="wrong_number", note="")
    assert await world.services.records.is_opted_out(conversation)
    desk, conversation = await claimed(world, n=1)
    await desk.post(f"/agent/c/{conversation}/close", outcome="dispute_opened", note="", lift_holds="1")
    assert await world.services.redis.hexists(keys.hold(ZH_ACCOUNT), "dispute")  # not lifted by the tick


async def test_lifting_holds_on_close_resumes_reminders(world: World) -> None:
    conversation = world.conversation(0)
    await world.services.records.paid_claim(EN_ACCOUNT, conversation)
    desk = await signed_in(world, "alice")
    await desk.post(f"/agent/c/{conversation}/claim")
    await desk.post(f"/agent/c/{conversation}/close", outcome="other", note="payment found", lift_holds="1")
    assert not await world.services.redis.exists(keys.hold(EN_ACCOUNT))
    assert "hold_lifted" in [e["event"] for e in await audit_events(world)]


# --- live notices ------------------------------------------------------------------------------------


async def test_the_websocket_announces_queue_changes_and_only_own_messages(world: World) -> None:
    alice, bob = await signed_in(world, "alice"), await signed_in(world, "bob")
    conversation = await handed_off(world, 0)
    await alice.post(f"/agent/c/{conversation}/claim")
    async with world.client.ws_connect("/agent/ws", headers={"Cookie": f"{SESSION_COOKIE}={bob.cookie}"}) as ws:
        await asyncio.sleep(0.2)  # subscribed
        await sms(world, 0, "for alice only")
        other = await handed_off(world, 1)
        notice = await ws.receive_json(timeout=10)
        assert notice == {"type": "queue", "conversation": other}
    async with world.client.ws_connect("/agent/ws", headers={"Cookie": f"{SESSION_COOKIE}={alice.cookie}"}) as ws:
        await asyncio.sleep(0.2)
        await sms(world, 0, "for alice")
        assert await ws.receive_json(timeout=10) == {"type": "message", "conversation": conversation}


async def test_the_websocket_refuses_other_origins_and_strangers(world: World) -> None:
    alice = await signed_in(world, "alice")
    response = await world.client.get("/agent/ws", headers={
        "Cookie": f"{SESSION_COOKIE}={alice.cookie}", "Origin": "https://evil.example",
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 403
    response = await world.client.get("/agent/ws")
    assert response.status == 401


async def test_a_websocket_closes_when_its_session_ends(world: World) -> None:
    alice = await signed_in(world, "alice")
    async with world.client.ws_connect("/agent/ws", headers={"Cookie": f"{SESSION_COOKIE}={alice.cookie}"}) as ws:
        await asyncio.sleep(0.2)
        await world.services.agents.remove("alice")
        await handed_off(world, 0)
        message = await ws.receive(timeout=10)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_a_post_to_a_page_without_a_form_is_refused_not_crashed(world: World) -> None:
    assert (await world.client.post("/agent", data={"csrf": "x"})).status in (403, 405)


async def test_hand_back_waits_for_the_bot_to_be_reachable(world: World) -> None:
    desk, conversation = await claimed(world)
    world.rasa.up = False
    response = await desk.post(f"/agent/c/{conversation}/handback")
    assert flash(response).startswith("The bot is unavailable right now")
    assert await world.services.handoffs.holder(conversation) == "alice"  # a paused bot would never answer
    world.rasa.up = True
    assert flash(await desk.post(f"/agent/c/{conversation}/handback")) == "Handed back to the bot."


async def test_agents_read_verification_answers_masked_supervisors_in_full(world: World) -> None:
    desk, conversation = await claimed(world)
    await sms(world, 0, "my birthday is 1980-01-01, ID ends 1234")
    sue = await signed_in(world, "sue")
    for_agent = await (await desk.get(f"/agent/c/{conversation}/transcript")).text()
    assert "1980-01-01" not in for_agent and "1234" not in for_agent and "my birthday is ***" in for_agent
    assert "1980-01-01, ID ends 1234" in await (await sue.get(f"/agent/c/{conversation}/transcript")).text()


async def test_an_agent_verifies_the_borrower_without_seeing_the_answer(world: World) -> None:
    desk, conversation = await claimed(world)
    await sms(world, 0, "it is 1981-02-02")
    failed = await desk.post(f"/agent/c/{conversation}/verify")
    assert flash(failed) == "The borrower's last message does not verify them (1 of 3 attempts)."
    await sms(world, 0, "sorry, 1980-01-01")
    passed = await desk.post(f"/agent/c/{conversation}/verify")
    assert flash(passed) == "Verified: the borrower's answer matches the ledger."
    assert world.rasa.events[conversation][-1] == {"event": "slot", "name": "verified_account", "value": EN_ACCOUNT}
    assert await world.services.records.verification_failures(EN_ACCOUNT) == 0


async def test_agent_verification_shares_the_bots_lock(world: World) -> None:
    desk, conversation = await claimed(world)
    await sms(world, 0, "1234 or 5678 or 9999")  # a guess at several is a failed attempt
    for _ in range(3):
        await desk.post(f"/agent/c/{conversation}/verify")
    await sms(world, 0, "1980-01-01")
    locked = await desk.post(f"/agent/c/{conversation}/verify")
    assert flash(locked).startswith("Verification is locked for 24 hours")
    assert not any(e.get("name") == "verified_account" for e in world.rasa.events[conversation])


async def test_a_crafted_flash_code_shows_nothing(world: World) -> None:
    desk = await signed_in(world, "alice")
    html = await (await desk.get("/agent/?m=Security+alert:+call+555")).text()
    assert "Security alert" not in html and 'class="flash"' not in html


async def test_a_message_shows_after_the_sessions_own_action_and_never_from_a_crafted_link(world: World) -> None:
    conversation = await handed_off(world)
    alice = await signed_in(world, "alice")
    assert (await alice.post(f"/agent/c/{conversation}/claim")).status == 303
    closed = await alice.post(f"/agent/c/{conversation}/close", outcome="no_such_outcome", note="")
    location = closed.headers["Location"]
    assert "&s=" in location
    page = await (await alice.get(location)).text()
    assert "outcome must be one of" in page
    crafted = location.split("?")[0] + "?m=invalid&detail=Security+check%3A+call+us+now"
    assert "Security check" not in await (await alice.get(crafted)).text()
    forged = location.replace("outcome+must", "outcome+MUST")
    assert "outcome MUST" not in await (await alice.get(forged)).text()
    sue = await signed_in(world, "sue")  # another session's link shows nothing either
    assert "outcome must be one of" not in await (await sue.get(location)).text()
