"""The gateway: Twilio's signed webhooks in, TwiML out, Rasa behind.

Everything public goes through here. Phone numbers become pseudonyms at the
door; message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import redis.exceptions
from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.console import desk as console
from bot.console import field as field_console
from bot.contact import sms, voice
from bot.contact.outbound import Sender, record_status, twilio_client
from bot.contact.policy import Attempt
from bot.core import catalog, keys
from bot.core.crypto import pseudonym
from bot.core.heap import freeze_startup_heap
from bot.core.settings import Settings
from bot.dialogue import visits
from bot.domain import transcripts
from bot.domain.ledger import E164_PATTERN, Account
from bot.domain.records import console_notice
from bot.edge.appkeys import DRAIN, PENDING, RASA_BUSY, RASA_SLOTS
from bot.edge.in_flight import NoSlot, Slots
from bot.privacy import retention
from bot.services import Services
from bot.web import http_writes, rasa_client
from bot.web.appkeys import HTTP, SENDER, SERVICES, STOPPING

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
SEEN_TTL_SECONDS = 7 * 24 * 3600
REPLY_KEPT_SECONDS = 30 * 24 * 3600
# A turn that crashed midway must not block Twilio's retry for long.
IN_PROGRESS_TTL_SECONDS = 60
# A message waiting longer than this behind the same borrower's earlier ones is kept and answered by
# SMS later: Twilio gives up after 15 s, and the turn ahead may take Rasa's whole timeout.
ORDER_WAIT_SECONDS = 3.0
DRAIN_EVERY_SECONDS = 5
RASA_TIMEOUT = aiohttp.ClientTimeout(total=12)  # Twilio gives up after 15 s
RASA_SLOT_WAIT_SECONDS = 2.5  # and the turn's wait for a free slot (bot/edge/in_flight.py) with it
_MESSAGE_SID = re.compile(r"(SM|MM|SMS)[0-9a-fA-F]{32}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_STATUS = re.compile(r"[a-z_-]{3,24}")
_E164 = re.compile(E164_PATTERN)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_IN_PROGRESS = b"in-progress"

VOICE_TURN_URL = "/twilio/voice?turn=1"
LAST_SAID_TTL_SECONDS = 3600


class RasaUnavailable(Exception):
    """Rasa did not answer; the turn was not taken."""


class _NotTaken(RasaUnavailable):
    """That Rasa server did not take the turn; another one may."""


def init_app(settings: Settings) -> web.Application:
    """Build the gateway application; clients open in ``cleanup_ctx``."""
    http_writes.install()  # its answers and its calls to Rasa: headers and body in one write
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[storage_unavailable])
    app[SERVICES] = Services(settings)
    app[RASA_BUSY] = Counter()
    app[RASA_SLOTS] = Slots(settings.rasa_turns_at_once * len(settings.rasa_urls))
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_background_loops)  # type: ignore[arg-type]  # aiohttp 3.9 mistypes Signal
    app.on_startup.append(_freeze_heap)  # type: ignore[arg-type]  # as above
    app.cleanup_ctx.append(_clients)
    app.cleanup_ctx.append(_visit_reminders)
    app.cleanup_ctx.append(_retention_sweeps)
    app.cleanup_ctx.append(_kept_turns)
    app.router.add_post("/twilio/sms", sms_webhook)
    app.router.add_post("/twilio/status", status_callback)
    app.router.add_post("/twilio/voice", voice_webhook)
    app.router.add_get("/healthz", healthz)
    console.add_to(app)
    field_console.add_to(app)
    return app


async def _freeze_heap(app: web.Application) -> None:
    freeze_startup_heap()


async def _stop_background_loops(app: web.Application) -> None:
    app[STOPPING].set()
    if DRAIN in app:
        app[DRAIN].set()


async def _visit_reminders(app: web.Application) -> AsyncIterator[None]:
    """Text tomorrow's visits their reminder every few minutes, in the background."""
    minutes = app[SERVICES].settings.visit_reminder_minutes
    remind = (_every(app, minutes * 60, "visit reminders", lambda: visits.send_reminders(app[SERVICES], app[SENDER]))
              if minutes else None)
    async with _in_background(app, remind):
        yield


async def _retention_sweeps(app: web.Application) -> AsyncIterator[None]:
    """Trim the audit and decision streams and old visit outcomes every hour, in the background."""
    async with _in_background(app, _every(app, 3600, "retention sweep", lambda: _sweep(app))):
        yield


async def _kept_turns(app: web.Application) -> AsyncIterator[None]:
    """Replay the turns Rasa could not take, when kicked and every few seconds, in the background."""
    app[DRAIN] = asyncio.Event()
    async with _in_background(app, _every(app, DRAIN_EVERY_SECONDS, "replaying kept turns", lambda: drain(app),
                                          wake=app[DRAIN])):
        yield


@contextlib.asynccontextmanager
async def _in_background(app: web.Application, work: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    """Run a loop that ends once STOPPING is set (on shutdown, see _stop_background_loops)."""
    task = asyncio.create_task(work) if work else None
    try:
        yield
    finally:
        await _stop_background_loops(app)  # already, unless the app never started serving
        if task:
            # The event, not only the cancel: redis-py can swallow a cancellation inside a command.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _every(app: web.Application, seconds: int, what: str, one_round: Callable[[], Awaitable[object]],
                 wake: asyncio.Event | None = None) -> None:
    """Run ``one_round`` every ``seconds``, or sooner when ``wake`` is set, until STOPPING is set
    (which sets ``wake`` too). A failed round is logged and the next one runs."""
    stop = app[STOPPING]
    wake = wake or stop
    while not stop.is_set():
        if wake is not stop:
            wake.clear()
        try:
            await one_round()
        except Exception as exc:  # a failed round must not stop the next one
            log.error("%s failed: %s", what, type(exc).__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


async def _sweep(app: web.Application) -> None:
    swept = await retention.sweep(app[SERVICES])
    if any(dataclasses.astuple(swept)):
        log.info("retention: %d audit events, %d contact decisions, %d visit outcomes deleted",
                 swept.audit_events, swept.contact_decisions, swept.visit_outcomes)


async def drain(app: web.Application) -> int:
    """Replay every conversation's kept turns in arrival order and text their replies; returns how
    many were replayed. A conversation stops at its first turn Rasa still cannot take."""
    svc, replayed = app[SERVICES], 0
    for conversation_id in await svc.pending_turns.conversations():
        while True:
            async with svc.turn_order.hold(conversation_id, ORDER_WAIT_SECONDS) as my_turn:
                turn = await svc.pending_turns.first(conversation_id) if my_turn else None
                if turn is None:
                    break
                try:
                    texts = await _answer(app, conversation_id, turn.body, turn.sid)
                except RasaUnavailable:
                    break
                await _text_replies(app, conversation_id, turn.sid, texts)
                await svc.pending_turns.done(conversation_id, turn.sid)
                replayed += 1
    return replayed


async def _text_replies(app: web.Application, conversation_id: str, sid: str, texts: list[str]) -> None:
    """A replayed turn's replies by SMS; the outbox key per reply makes a second replay send nothing."""
    account = await app[SERVICES].ledger.for_conversation(conversation_id)
    if account is None:
        return
    for n, text in enumerate(texts):
        sent = await app[SENDER].sms(account, text, f"reply:{sid}:{n}", requested=True)
        log.info("reply to a kept turn: %s (%s)", sent.outcome, conversation_id)


async def _clients(app: web.Application) -> AsyncIterator[None]:
    svc = app[SERVICES]
    app[HTTP] = aiohttp.ClientSession(timeout=RASA_TIMEOUT)
    client = twilio_client(svc.settings)
    app[SENDER] = Sender(client, svc.settings, svc.policy, svc.redis)
    app[PENDING] = set()
    yield
    await asyncio.gather(*app[PENDING], return_exceptions=True)
    await app[HTTP].close()
    await client.http_client.close()
    await svc.close()


# --- the SMS webhook ---------------------------------------------------------


async def signed_form(request: web.Request, settings: Settings) -> MultiDictProxy[str]:
    """The webhook's form fields, once the size, encoding and signature are right.

    Raises:
        web.HTTPRequestEntityTooLarge: over 64 KiB.
        web.HTTPForbidden: no signature or a wrong one.
        web.HTTPBadRequest: not a urlencoded form.
    """
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length or 0)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        raise web.HTTPForbidden(text="missing X-Twilio-Signature")
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPBadRequest(text="expected application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except (UnicodeError, LookupError, TypeError, ValueError):  # bad bytes, or a charset aiohttp cannot use
        raise web.HTTPBadRequest(text="form is not valid UTF-8") from None
    url = settings.public_base_url + request.path_qs
    if not RequestValidator(settings.twilio_auth_token).validate(url, form, signature):
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
    return form  # type: ignore[return-value]


def _twiml(replies: list[str]) -> str:
    response = MessagingResponse()
    for text in sms.pack(replies):
        response.message(text)
    return str(response)


@web.middleware
async def storage_unavailable(request: web.Request, handler: Any) -> web.StreamResponse:
    """A Twilio webhook that Redis failed is 503: nothing was taken, and Twilio may retry it."""
    try:
        return await handler(request)
    except redis.exceptions.RedisError as exc:
        if not request.path.startswith("/twilio/"):
            raise
        log.error("redis unavailable: %s", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="storage unavailable, retry later") from None


async def sms_webhook(request: web.Request) -> web.Response:
    """Answer one inbound SMS with TwiML, taking each MessageSid's turn once."""
    svc = request.app[SERVICES]
    form = await signed_form(request, svc.settings)
    sid, phone, body = form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")
    if not _MESSAGE_SID.fullmatch(sid) or not _E164.fullmatch(phone):
        raise web.HTTPBadRequest(text="MessageSid and an E.164 From are required")
    return await _take_turn_once(request.app, sid, phone, body)


async def _take_turn_once(app: web.Application, sid: str, phone: str, body: str) -> web.Response:
    svc = app[SERVICES]
    seen_key = keys.webhook_seen(sid)
    if not await svc.redis.set(seen_key, _IN_PROGRESS, nx=True, ex=IN_PROGRESS_TTL_SECONDS):
        return _xml(await _replayed_answer(svc, seen_key))
    try:
        return _xml(await _reply(app, pseudonym(phone, svc.settings.hmac_secret), body, sid, seen_key))
    except BaseException:
        await svc.redis.delete(seen_key)  # not taken: let Twilio's retry take it
        raise


async def status_callback(request: web.Request) -> web.Response:
    """Record a message or call status (queued, sent, delivered, undelivered, failed, ...)."""
    svc = request.app[SERVICES]
    form = await signed_form(request, svc.settings)
    sid = form.get("MessageSid") or form.get("CallSid") or ""
    status = form.get("MessageStatus") or form.get("CallStatus") or ""
    if not (_MESSAGE_SID.fullmatch(sid) or _CALL_SID.fullmatch(sid)) or not _STATUS.fullmatch(status):
        raise web.HTTPBadRequest(text="a MessageSid or CallSid and its status are required")
    known = await record_status(svc.redis, svc.policy, form)
    if not known:
        log.info("status callback for a sid we did not send; ignored")
    return web.Response(status=204)


async def _replayed_answer(svc: Services, seen_key: str) -> str:
    stored = await svc.redis.get(seen_key)
    if stored in (None, _IN_PROGRESS):
        log.info("duplicate delivery while its turn is in progress; answered empty")
        return _twiml([])
    log.info("duplicate delivery; answered as before")
    return str(svc.vault.open(stored))


def _xml(twiml: str) -> web.Response:
    return web.Response(text=twiml, content_type="text/xml")


async def _reply(app: web.Application, conversation_id: str, body: str, sid: str, seen_key: str) -> str:
    """The TwiML answer to one message, after the same borrower's earlier ones, recorded under ``seen_key``
    for Twilio's retries as the turn is left. When Rasa cannot take it now, or earlier ones are still kept,
    it is kept too (answered later by SMS) and Twilio gets none."""
    svc = app[SERVICES]
    async with svc.turn_order.hold(conversation_id, ORDER_WAIT_SECONDS, after_kept=True) as place:
        texts = await _answer_now(app, conversation_id, body, sid) if place else None
        if texts is None:
            await svc.pending_turns.add(conversation_id, sid, body)
        twiml = _twiml(texts or [])
        place.set_on_leaving(seen_key, svc.vault.seal(twiml), SEEN_TTL_SECONDS)
    if texts is None:
        app[DRAIN].set()
    return twiml


async def _answer_now(app: web.Application, conversation_id: str, body: str, sid: str) -> list[str] | None:
    """The answer, or None if Rasa did not take the turn."""
    try:
        return await _answer(app, conversation_id, body, sid)
    except RasaUnavailable:
        log.warning("rasa did not take the turn; it is kept for later (%s)", conversation_id)
        return None


async def _answer(app: web.Application, conversation_id: str, body: str, sid: str) -> list[str]:
    """Keyword at the edge, polite refusal for strangers, otherwise a Rasa turn.

    Raises:
        RasaUnavailable: Rasa did not take the turn (nothing was answered).
    """
    svc = app[SERVICES]
    # A reply, whatever it says, is noted as one: campaigns call only those who did not reply.
    account, chosen_language, holder = await _turn_facts(svc, conversation_id, reply_kept_seconds=REPLY_KEPT_SECONDS)
    language = chosen_language or (account.language if account else ("zh" if _CJK.search(body) else "en"))
    word = sms.keyword(body)
    if account is not None and holder:
        # Under the lock an agent lets go under: the message is the agent's, or the bot's, never neither's.
        async with svc.redis.lock(keys.route_lock(conversation_id), timeout=30, blocking_timeout=30):
            if await svc.handoffs.holder(conversation_id):
                return await _to_agent(app, conversation_id, body, word, language)
    if word:
        return await _keyword_reply(app, conversation_id, word, language)
    if account is None:
        log.info("message from a number not in the ledger (%s)", conversation_id)
        return [_say(app, "utter_unknown_sender", language)]
    if not body.strip():
        log.info("empty message body (%s); nothing to answer", conversation_id)
        return []
    texts, _ = await _rasa_exchange(app, conversation_id, body, "sms", message_id=sid)
    return texts


async def _turn_facts(svc: Services, conversation_id: str,
                      reply_kept_seconds: int = 0) -> tuple[Account | None, str | None, str | None]:
    """The conversation's account, the language its borrower chose and the agent holding it (and, with
    ``reply_kept_seconds``, the borrower's reply noted), in one round trip to Redis: a round trip costs the
    gateway more CPU than the commands in it (docs/benchmarks-changes.md)."""
    try:
        return await _read_turn_facts(svc, conversation_id, reply_kept_seconds)
    except redis.exceptions.NoScriptError:  # Redis does not know the ledger's script (first use, a restart)
        await svc.ledger.load_script()  # the reads and the failed lookup changed nothing: read again
        return await _read_turn_facts(svc, conversation_id, reply_kept_seconds)


async def _read_turn_facts(svc: Services, conversation_id: str,
                           reply_kept_seconds: int) -> tuple[Account | None, str | None, str | None]:
    async with svc.redis.pipeline(transaction=False) as pipe:
        svc.ledger.queue_for_conversation(pipe, conversation_id, reply_kept_seconds)
        svc.records.queue_language(pipe, conversation_id)
        svc.handoffs.queue_holder(pipe, conversation_id)
        sealed, language, holder = await pipe.execute()
    return svc.ledger.account_from(sealed), _text(language), _text(holder)


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


async def _to_agent(app: web.Application, conversation_id: str, body: str, word: str | None,
                    language: str) -> list[str]:
    """An agent holds the conversation: the message goes to their console, not to the bot.

    It is recorded in the tracker (which predicts nothing from it) and announced to the
    console; STOP and the other keywords still work and are recorded too.

    Raises:
        RasaUnavailable: Rasa did not record it.
    """
    events = [transcripts.user_event(body, "sms")] if body.strip() else []
    if events:
        await app[SERVICES].handoffs.borrower_wrote(conversation_id)
    replies = await _keyword_reply(app, conversation_id, word, language) if word else []
    events += [transcripts.bot_event(text) for text in replies]
    try:
        if events:
            await rasa_client.append(app[HTTP], app[SERVICES].settings, conversation_id, events)
    except rasa_client.TrackerUnavailable as exc:
        raise RasaUnavailable from exc
    await app[SERVICES].redis.publish(keys.CONSOLE_EVENTS, console_notice("message", conversation_id))
    return replies


async def _keyword_reply(app: web.Application, conversation_id: str, word: str, language: str) -> list[str]:
    """The answer to a keyword. An opt-out is confirmed once, in the reply itself (within seconds, asking
    nothing: TCPA-REVOCATION-2025.confirmation). A STOP after an opt-out is not answered, and leaves the
    opt-out as it was (one said in conversation covers more than a keyword's)."""
    records = app[SERVICES].records
    if word == "opt_out":
        if await records.is_opted_out(conversation_id):
            return []
        await records.opt_out(conversation_id, "keyword")
        log.info("opt-out by keyword (%s)", conversation_id)
        return [_say(app, "utter_opted_out", language)]
    if word == "opt_in":
        was_opted_out = await records.is_opted_out(conversation_id)
        if was_opted_out and not await records.opt_in(conversation_id):
            return [_say(app, "utter_opt_in_needs_person", language)]
        return [_say(app, "utter_opted_in", language)]
    return [_say(app, "utter_help", language)]


def _say(app: web.Application, response: str, language: str, channel: str | None = None) -> str:
    settings = app[SERVICES].settings
    return catalog.render(catalog.responses(), response, language, channel, bank_phone=settings.bank_phone,
                          agent_hours=settings.agent_hours)


def _speak(app: web.Application, response: str, language: str) -> str:
    """A line said on a call: the response's voice wording where it has one."""
    return _say(app, response, language, "voice")


async def _rasa_exchange(app: web.Application, conversation_id: str, body: str, channel: str,
                         message_id: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """One turn through our channel (bot/rasa_ext/channel.py) on the least busy Rasa server (any can take any
    conversation: they share Redis, and turns are already in order) or, if that one did not take it
    (refused the connection, or 503: not taken), on the next; once a slot is free, in arrival order.

    Raises:
        RasaUnavailable: no slot came free in time, no Rasa server took the turn, or one may have taken it
            without answering.
    """
    payload = {"sender": conversation_id, "message": body, "message_id": message_id,
               "metadata": {"channel": channel}}
    try:
        async with app[RASA_SLOTS].slot(RASA_SLOT_WAIT_SECONDS):
            return await _on_least_busy_rasa(app, conversation_id, payload)
    except NoSlot:
        log.warning("no Rasa slot came free in %s s (%s)", RASA_SLOT_WAIT_SECONDS, conversation_id)
        raise RasaUnavailable from None


async def _on_least_busy_rasa(app: web.Application, conversation_id: str,
                              payload: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    busy = app[RASA_BUSY]
    for url in sorted(app[SERVICES].settings.rasa_for(conversation_id), key=lambda u: busy[u]):
        busy[url] += 1
        try:
            return await _rasa_post(app, url + "/webhooks/gateway/webhook", payload)
        except _NotTaken:
            continue
        finally:
            busy[url] -= 1
    raise RasaUnavailable


async def _rasa_post(app: web.Application, url: str,
                     payload: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    conversation_id = payload["sender"]
    try:
        async with app[HTTP].post(url, json=payload) as response:
            if response.status != 200:
                log.error("rasa answered HTTP %s (%s)", response.status, conversation_id)
                raise _NotTaken if response.status == 503 else RasaUnavailable
            messages: Any = await response.json()
    except aiohttp.ClientConnectorError as exc:
        log.error("rasa unreachable: %s (%s)", type(exc).__name__, conversation_id)
        raise _NotTaken from exc
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        # Maybe taken (a timeout, a dropped connection): not tried elsewhere, but kept and replayed.
        log.error("rasa failed mid-turn or answered garbage: %s (%s)", type(exc).__name__, conversation_id)
        raise RasaUnavailable from exc
    if not isinstance(messages, list):
        log.error("rasa answered %s instead of a list (%s)", type(messages).__name__, conversation_id)
        raise RasaUnavailable
    messages = [m for m in messages if isinstance(m, dict)]
    return ([str(m["text"]) for m in messages if m.get("text")],
            [m["custom"] for m in messages if isinstance(m.get("custom"), dict)])


# --- the voice webhook -------------------------------------------------------


async def voice_webhook(request: web.Request) -> web.Response:
    """Answer one step of a call with TwiML: a greeting, an answer, a reprompt or goodbye."""
    svc = request.app[SERVICES]
    form = await signed_form(request, svc.settings)
    outbound = form.get("Direction", "inbound").startswith("outbound")
    phone = form.get("To" if outbound else "From", "")
    silences = request.query.get("silence", "0")
    if not _CALL_SID.fullmatch(form.get("CallSid", "")) or not re.fullmatch(r"[0-9]{1,2}", silences):
        raise web.HTTPBadRequest(text="a CallSid is required")
    # A withheld number ("anonymous") is a caller we cannot know: they hear the unknown-caller answer.
    conversation_id = pseudonym(phone, svc.settings.hmac_secret) if _E164.fullmatch(phone) else None
    return _xml(await _voice_step(request.app, form, conversation_id, first="turn" not in request.query,
                                  silences=int(silences)))


async def _voice_step(app: web.Application, form: Any, conversation_id: str | None, first: bool,
                      silences: int) -> str:
    svc = app[SERVICES]
    account, chosen, holder = await _turn_facts(svc, conversation_id) if conversation_id else (None, None, None)
    language = chosen or (account.language if account else "en")
    if form.get("AnsweredBy", "").startswith(("machine", "fax")):
        return voice.finish([_speak(app, "utter_voicemail", language)], language)
    if account is None or conversation_id is None:
        return voice.finish([_speak(app, "utter_unknown_sender", language)], language)
    if holder:  # an agent is on it by SMS: no second bot conversation
        return _with_agent(app, language)
    key = _opt_out_key(svc, account)
    if not first and key and voice.keyed(form.get("Digits", "")) == key:
        await svc.records.opt_out(conversation_id, "call_key")
        log.info("opt-out by key press on a call (%s)", conversation_id)
        return voice.finish([_speak(app, "utter_opted_out_call", language)], language)
    message = "/greet" if first else voice.caller_message(form.get("SpeechResult", ""), form.get("Digits", ""),
                                                           shortcuts=not await _keys_answer(app, form["CallSid"]))
    if message is None:
        return await _no_answer(app, form, account, language, silences)
    try:
        texts, customs = await _call_turn(app, conversation_id, message, first)
    except RasaUnavailable:
        return voice.finish([_speak(app, "utter_voice_unavailable", language)], language)
    if not first:  # the borrower spoke with us: a phone conversation, whoever placed the call
        placed = form.get("Direction", "inbound").startswith("outbound")
        await svc.policy.record_attempt(account.account_id, form["CallSid"],
                                        Attempt(datetime.now(ZoneInfo("UTC")), "call", answered=True, initiated=placed))
    language = await _language(app, conversation_id, account)  # the caller may have switched
    if first:
        texts = _opening(app, texts, language, key)
    await svc.redis.set(keys.last_said(form["CallSid"]), svc.vault.seal(texts), ex=LAST_SAID_TTL_SECONDS)
    return await _act_on_call(app, form["CallSid"], account, language, texts, customs)


def _with_agent(app: web.Application, language: str) -> str:
    agent_phone = app[SERVICES].settings.agent_phone
    if agent_phone:
        return voice.transfer([_speak(app, "utter_voice_transfer", language)], language, agent_phone)
    return voice.finish([_speak(app, "utter_voice_with_agent", language)], language)


async def _keys_answer(app: web.Application, call_sid: str) -> bool:
    """Whether the last turn listed numbered options, so that a key is an answer, not a shortcut."""
    async with app[SERVICES].redis.pipeline(transaction=True) as tx:
        tx.get(keys.keys_answer(call_sid))
        tx.delete(keys.keys_answer(call_sid))
        listed, _ = await tx.execute()
    return bool(listed)


async def _call_turn(app: web.Application, conversation_id: str, message: str,
                     first: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """A Rasa turn on the phone. A call starts a fresh session: whoever answers must verify
    again, even if the borrower verified by SMS a few minutes ago."""
    if not first:
        return await _rasa_exchange(app, conversation_id, message, "voice")
    opened, _ = await _rasa_exchange(app, conversation_id, "/session_start", "voice")
    texts, customs = await _rasa_exchange(app, conversation_id, message, "voice")
    return opened + texts, customs


def _opening(app: web.Application, texts: list[str], language: str, opt_out_key: str | None) -> list[str]:
    """Every call opens by naming the bank's automated assistant (CBA-2026.identify_at_first_contact),
    then says whether it is recorded and, where the rules offer one, the key that stops calls."""
    intro = _speak(app, "utter_intro", language)
    texts = [intro, *(t for t in texts if t != intro)]  # once, first, however the session began
    if app[SERVICES].settings.call_recording:
        texts.insert(1, _speak(app, "utter_call_recorded", language))
    if opt_out_key:
        key_line = catalog.render(catalog.responses(), "utter_voice_opt_out_key", language, "voice", key=opt_out_key)
        texts.insert(max(1, len(texts) - 1), key_line)  # before the turn's question, after the intro
    return texts


def _opt_out_key(svc: Services, account: Account) -> str | None:
    """The key that revokes consent on a call, where a rule set in force offers one (TCPA-REVOCATION-2025)."""
    today = datetime.now(ZoneInfo(account.timezone)).date()
    return svc.policy.rules.revocation_key(svc.policy.jurisdictions(account), today)


async def _language(app: web.Application, conversation_id: str | None, account: Any) -> str:
    chosen = await app[SERVICES].records.language(conversation_id) if conversation_id else None
    return chosen or (account.language if account else "en")


async def _no_answer(app: web.Application, form: Any, account: Any, language: str, silences: int) -> str:
    """Key 9 repeats; silence is reprompted twice, then the call ends and an SMS follows."""
    svc = app[SERVICES]
    if voice.keyed(form.get("Digits", "")) == voice.REPEAT_KEY:
        stored = await svc.redis.get(keys.last_said(form["CallSid"]))
        return voice.ask(svc.vault.open(stored) if stored else [], language, VOICE_TURN_URL, 0)
    if silences <= voice.MAX_REPROMPTS:
        return voice.ask([_speak(app, "utter_voice_reprompt", language)], language, VOICE_TURN_URL, silences)
    _send_later(app, account, _say(app, "utter_missed_call_sms", language), f"{form['CallSid']}:silence", False)
    return voice.finish([_speak(app, "utter_voice_silence_goodbye", language)], language)


async def _act_on_call(app: web.Application, call_sid: str, account: Any, language: str, texts: list[str],
                       customs: list[dict[str, Any]]) -> str:
    """Send the SMS the turn asked for, then transfer, hang up or listen again."""
    for custom in (c for c in customs if c.get("sms")):
        async with app[SERVICES].redis.pipeline(transaction=True) as tx:
            tx.incr(keys.call_sms_count(call_sid))
            tx.expire(keys.call_sms_count(call_sid), LAST_SAID_TTL_SECONDS)
            number, _ = await tx.execute()
        _send_later(app, account, str(custom["sms"]), f"{call_sid}:sms:{number}", True)
    actions = {c.get("call") for c in customs}
    if "keys_answer" in actions:
        await app[SERVICES].redis.set(keys.keys_answer(call_sid), 1, ex=LAST_SAID_TTL_SECONDS)
    agent_phone = app[SERVICES].settings.agent_phone
    if "transfer" in actions and agent_phone:
        return voice.transfer([_speak(app, "utter_voice_transfer", language)], language, agent_phone)
    if "hangup" in actions:
        return voice.finish(texts, language)
    return voice.ask(texts, language, VOICE_TURN_URL, 0)


def _send_later(app: web.Application, account: Any, body: str, outbox_key: str, requested: bool) -> None:
    """Send an SMS without holding up the call's TwiML (Twilio waits 15 s at most)."""
    task = asyncio.create_task(app[SENDER].sms(account, body, outbox_key, requested=requested))
    app[PENDING].add(task)
    task.add_done_callback(lambda done: _sent(app, done))


def _sent(app: web.Application, task: asyncio.Task[Any]) -> None:
    app[PENDING].discard(task)
    if task.cancelled():
        return
    if task.exception() is not None:
        log.error("SMS during a call not sent: %s", type(task.exception()).__name__)
    else:
        log.info("SMS during a call: %s", task.result().outcome)


# --- health ------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """200 only when Redis, the Rasa server (with a model) and the action server answer."""
    svc = request.app[SERVICES]
    checks = await asyncio.gather(
        _redis_ok(svc), _rasa_ok(request.app), _http_ok(request.app, svc.settings.action_url + "/health"),
    )
    status = dict(zip(("redis", "rasa", "actions"), checks, strict=False))
    return web.json_response(
        {name: "ok" if ok else "down" for name, ok in status.items()}, status=200 if all(checks) else 503
    )


async def _redis_ok(svc: Services) -> bool:
    try:
        return bool(await svc.redis.ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


async def _rasa_ok(app: web.Application) -> bool:
    """Every Rasa server has its model loaded."""
    settings = app[SERVICES].settings
    for url in settings.rasa_urls:
        try:
            async with app[HTTP].get(url + "/status", params={"token": settings.rasa_token}) as r:
                if r.status != 200 or not (await r.json()).get("model_file"):
                    return False
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return False
    return True


async def _http_ok(app: web.Application, url: str) -> bool:
    try:
        async with app[HTTP].get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
