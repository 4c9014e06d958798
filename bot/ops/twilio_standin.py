"""A local stand-in for the few Twilio REST endpoints the project uses.

With no Twilio account configured, the real ``twilio`` library is pointed here
(``TWILIO_API_BASE_URL``), so every outbound request still goes through the
library's real HTTP path. It checks Basic auth like Twilio, answers with
Twilio-shaped JSON and sends signed status callbacks. ``fail_next_with_429``
and ``undeliverable`` let tests exercise retries and failures.

A call to a number with a script is driven like a person would: the stand-in
fetches the call's TwiML from /twilio/voice, signed, then answers each Gather
with the script's next speech or keys, and keeps the transcript of what was
said. ``/standin/...`` lets tests set scripts and read what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from bot.contact.sms import segments

log = logging.getLogger(__name__)

ACCOUNTS = "/2010-04-01/Accounts/{account}"
UNDELIVERED = 30003  # Twilio: unreachable destination handset


@dataclass
class StandIn:
    """The stand-in's state: what was sent, and the failures to simulate."""

    account_sid: str
    auth_token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next_with_429: int = 0
    undeliverable: set[str] = field(default_factory=set)
    callbacks: list[asyncio.Task[None]] = field(default_factory=list)
    scripts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # (public base, local base): callbacks are signed for the public URL, delivered to the local one.
    deliver_via: tuple[str, str] | None = None


STATE = web.AppKey("state", StandIn)
HTTP = web.AppKey("http", aiohttp.ClientSession)


def init_app(account_sid: str, auth_token: str) -> web.Application:
    """The stand-in application for one account."""
    app = web.Application()
    app[STATE] = StandIn(account_sid, auth_token)
    app.cleanup_ctx.append(_session)
    app.router.add_post(ACCOUNTS + "/Messages.json", create_message)
    app.router.add_post(ACCOUNTS + "/Calls.json", create_call)
    app.router.add_put("/standin/scripts/{phone}", put_script)
    app.router.add_get("/standin/messages", list_messages)
    app.router.add_get("/standin/calls", list_calls)
    return app


async def list_messages(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].messages)


async def list_calls(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].calls)


async def put_script(request: web.Request) -> web.Response:
    """Script the person who answers calls to this number: a list of {"SpeechResult"|"Digits": ...}."""
    turns = await request.json()
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return _error(400, 0, "a script is a list of objects")
    request.app[STATE].scripts[request.match_info["phone"]] = turns
    return web.Response(status=204)


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession()
    yield
    for task in app[STATE].callbacks:
        task.cancel()
    await app[HTTP].close()


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "status": status}, status=status)


def _authorised(request: web.Request, state: StandIn) -> bool:
    expected = "Basic " + base64.b64encode(f"{state.account_sid}:{state.auth_token}".encode()).decode()
    return request.headers.get("Authorization") == expected and request.match_info["account"] == state.account_sid


async def _checked_form(request: web.Request, required: tuple[str, ...]) -> tuple[StandIn, Any] | web.Response:
    state = request.app[STATE]
    if not _authorised(request, state):
        return _error(401, 20003, "Authenticate")
    if state.fail_next_with_429 > 0:
        state.fail_next_with_429 -= 1
        return _error(429, 20429, "Too Many Requests")
    form = await request.post()
    missing = [name for name in required if not form.get(name)]
    if missing:
        return _error(400, 21604, f"A '{missing[0]}' parameter is required.")
    return state, form


async def create_message(request: web.Request) -> web.Response:
    """Accept a message and report its fate to the StatusCallback, as Twilio does."""
    checked = await _checked_form(request, ("To", "From", "Body"))
    if isinstance(checked, web.Response):
        return checked
    state, form = checked
    sid = "SM" + uuid.uuid4().hex
    message = {"sid": sid, "account_sid": state.account_sid, "to": form["To"], "from": form["From"],
               "body": form["Body"], "status": "queued", "num_segments": str(segments(form["Body"])),
               "error_code": None, "error_message": None, "direction": "outbound-api"}
    state.messages.append(message)
    fate = [("sent", None), ("undelivered", UNDELIVERED)] if form["To"] in state.undeliverable else [
        ("sent", None), ("delivered", None)]
    _report(request.app, form.get("StatusCallback"), [
        {"MessageSid": sid, "MessageStatus": status, "To": form["To"], "AccountSid": state.account_sid,
         **({"ErrorCode": str(code)} if code else {})} for status, code in fate])
    return web.json_response(message, status=201)


async def create_call(request: web.Request) -> web.Response:
    """Accept a call; it rings out unanswered unless a test drives it."""
    checked = await _checked_form(request, ("To", "From", "Url"))
    if isinstance(checked, web.Response):
        return checked
    state, form = checked
    sid = "CA" + uuid.uuid4().hex
    call = {"sid": sid, "account_sid": state.account_sid, "to": form["To"], "from": form["From"],
            "status": "queued", "direction": "outbound-api", "url": form["Url"],
            "machine_detection": form.get("MachineDetection"), "transcript": []}
    state.calls.append(call)
    script = state.scripts.get(form["To"])
    if script is None:
        _report(request.app, form.get("StatusCallback"), [
            {"CallSid": sid, "CallStatus": status, "To": form["To"], "AccountSid": state.account_sid}
            for status in ("initiated", "ringing", "no-answer")])
    else:
        state.callbacks.append(asyncio.create_task(_drive(request.app, call, script, form.get("StatusCallback"))))
    return web.json_response({k: v for k, v in call.items() if k != "transcript"}, status=201)


async def _drive(app: web.Application, call: dict[str, Any], script: list[dict[str, str]],
                 status_callback: str | None) -> None:
    """Answer the call as a person: fetch TwiML, say the script's turns, hang up."""
    state = app[STATE]
    fields = {"CallSid": call["sid"], "AccountSid": state.account_sid, "From": call["from"], "To": call["to"],
              "Direction": "outbound-api", "CallStatus": "in-progress", "AnsweredBy": "human"}
    url = call["url"]
    twiml = await _signed_post(app, url, fields)
    for turn in script:
        call["transcript"] += _said(twiml)
        action = _gather_action(twiml)
        if twiml is None or action is None:
            break
        url = url.split("/twilio/")[0] + action
        twiml = await _signed_post(app, url, {**fields, **turn})
    call["transcript"] += _said(twiml)
    call["status"] = "completed"
    if status_callback:
        await _post_updates(app, status_callback, [{**fields, "CallStatus": "completed", "CallDuration": "60"}])


async def _signed_post(app: web.Application, url: str, fields: dict[str, str]) -> str | None:
    headers = {"X-Twilio-Signature": RequestValidator(app[STATE].auth_token).compute_signature(url, fields)}
    async with app[HTTP].post(_delivery_url(app, url), data=fields, headers=headers) as response:
        return await response.text() if response.status == 200 else None


def _said(twiml: str | None) -> list[str]:
    return [say.text or "" for say in ET.fromstring(twiml).iter("Say")] if twiml else []


def _gather_action(twiml: str | None) -> str | None:
    gather = ET.fromstring(twiml).find("Gather") if twiml else None
    return gather.get("action") if gather is not None else None


def _delivery_url(app: web.Application, url: str) -> str:
    via = app[STATE].deliver_via
    return url.replace(via[0], via[1], 1) if via else url


def _report(app: web.Application, url: str | None, updates: list[dict[str, str]]) -> None:
    if url:
        app[STATE].callbacks.append(asyncio.create_task(_post_updates(app, url, updates)))


async def _post_updates(app: web.Application, url: str, updates: list[dict[str, str]]) -> None:
    validator = RequestValidator(app[STATE].auth_token)
    for update in updates:
        await asyncio.sleep(0.01)
        headers = {"X-Twilio-Signature": validator.compute_signature(url, update)}
        try:
            async with app[HTTP].post(_delivery_url(app, url), data=update, headers=headers) as response:
                if response.status >= 300:
                    log.warning("status callback answered HTTP %s", response.status)
        except aiohttp.ClientError as exc:
            log.warning("status callback failed: %s", type(exc).__name__)
