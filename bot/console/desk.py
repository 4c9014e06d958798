"""The agent console under /agent/: sign in, the live queue, a conversation, reply, hand back, close.

Server-rendered Jinja2 pages (autoescaped: borrowers' words are shown, never run) and a
little JavaScript that listens on a WebSocket for notices and refetches the part
that changed. Every page but the login needs a session; every form carries the
session's CSRF token; an agent sees and acts only on conversations they hold,
a supervisor on all. Each view of a borrower's data and each action is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse
from zoneinfo import ZoneInfo

import jinja2
import redis.exceptions
import yaml
from aiohttp import WSMsgType, web
from twilio.base.exceptions import TwilioRestException

from bot.console.account_view import account_summary
from bot.core import audit, catalog, keys
from bot.core.crypto import mask_phone, mask_text, pseudonym
from bot.core.formatting import long_date, money
from bot.dialogue.conversation import local_today
from bot.domain import sla, transcripts, verification
from bot.domain.agents import LoginRefused, Session
from bot.domain.arrangements import total_paid
from bot.domain.assignment import Assigner, Waiting
from bot.domain.consent import read_phone
from bot.domain.handoffs import OUTCOMES, OUTCOMES_KEPT, Item, check_outcome
from bot.domain.ledger import Account, overdue
from bot.domain.payments import payment_link
from bot.domain.plans import Offer
from bot.domain.presence import Presence, Viewer
from bot.domain.records import HANDOFF_REASONS, HOLDING_REASONS, console_notice
from bot.field.report import RENDERING, render_pdf
from bot.services import Services
from bot.web import rasa_client
from bot.web.appkeys import HTTP, SENDER, SERVICES

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "__Host-console"
LOGIN_COOKIE = "__Host-console-login"
CONVERSATION = r"{conversation:c_[0-9a-f]{32}}"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
QUICK_REPLIES = ("utter_agent_hello", "utter_agent_verify", "utter_agent_checking", "utter_agent_options",
                 "utter_agent_back_to_bot", "utter_agent_goodbye")
# Quick replies with the account's figures, and the values each needs (offered after verification).
FIGURE_REPLIES = {"utter_agent_amount": {"overdue_amount", "oldest_due"},
                  "utter_agent_payment_link": {"overdue_amount", "payment_link", "link_hours"},
                  "utter_agent_plan": {"count", "regular", "first_due", "last_due", "total"}}
MAX_REPLY_CHARACTERS = 450
VISIT_FORM_BYTES = 512 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send Origin: null on our own forms
    "Cache-Control": "no-store",
}
TEMPLATES = web.AppKey("templates", jinja2.Environment)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_to(app: web.Application) -> None:
    """Serve the console under /agent/ in the gateway's application.

    (Routes on the gateway itself, not a sub-application: aiohttp 3.9 cannot resolve
    sub-applications with the pinned yarl.)
    """
    app.middlewares.extend([_security_headers, _signed_in, _csrf, _signed_flash])
    app[TEMPLATES] = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)  # type: ignore[arg-type]  # aiohttp 3.9 mistypes Signal
    app.router.add_get("/agent", to_queue)
    app.router.add_get("/agent/login", login_page)
    app.router.add_post("/agent/login", login)
    app.router.add_post("/agent/logout", logout)
    app.router.add_get("/agent/", queue_page)
    app.router.add_get("/agent/queue/rows", queue_rows)
    app.router.add_get("/agent/ws", notices)
    app.router.add_get(f"/agent/c/{CONVERSATION}", conversation_page)
    app.router.add_get(f"/agent/c/{CONVERSATION}/transcript", transcript_part)
    app.router.add_post(f"/agent/c/{CONVERSATION}/claim", claim)
    app.router.add_post(f"/agent/c/{CONVERSATION}/reply", reply)
    app.router.add_post(f"/agent/c/{CONVERSATION}/verify", verify)
    app.router.add_post(f"/agent/c/{CONVERSATION}/handback", hand_back)
    app.router.add_post(f"/agent/c/{CONVERSATION}/close", close)
    app.router.add_post(f"/agent/c/{CONVERSATION}/reassign", reassign)
    app.router.add_post(f"/agent/c/{CONVERSATION}/presence", presence)
    app.router.add_get(f"/agent/c/{CONVERSATION}/transcript.pdf", export_pdf)
    app.router.add_get("/agent/search", search_page)
    app.router.add_get("/agent/sla", sla_page)
    app.router.add_post("/agent/shift", shift)
    app.router.add_post("/agent/search", search)
    app.router.add_static("/agent/static", HERE / "static")


async def to_queue(_: web.Request) -> web.Response:
    """``/agent`` without its slash."""
    raise web.HTTPMovedPermanently("/agent/")


# --- middlewares: headers, sign-in, CSRF --------------------------------------------------------


def _console(request: web.Request) -> bool:
    return request.path == "/agent" or request.path.startswith("/agent/")


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _console(request):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except redis.exceptions.RedisError as exc:
        log.error("console: redis unavailable: %s", type(exc).__name__)
        response = web.HTTPServiceUnavailable(text="storage unavailable, try again shortly")
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():  # a handler may set a stricter policy of its own
            response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException):
        raise response
    return response


_OPEN_PATHS = ("/agent/login", "/agent/static/")


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No page without a live session: pages redirect to the login, everything else is 401."""
    if not _console(request) or request.path == "/agent" or request.path.startswith(_OPEN_PATHS):
        return await handler(request)
    background = request.path.endswith(("/rows", "/transcript", "/ws", "/presence"))  # the page refreshing itself
    session = await services_of(request).agents.session(request.cookies.get(SESSION_COOKIE, ""), refresh=not background)
    if session is None:
        if request.method == "GET" and not background:
            raise web.HTTPSeeOther("/agent/login")
        raise web.HTTPUnauthorized(text="sign in first")
    request["session"] = session
    if not _role_allows(session, request.path):
        if session.field and request.path == "/agent/":
            raise web.HTTPSeeOther("/agent/visits")
        await audit_event(request, "denied", path=request.path.split("/")[2])
        raise web.HTTPForbidden(text="your role cannot open this page")
    return await handler(request)


def _role_allows(session: Session, path: str) -> bool:
    """Field staff work visits only; agents everything but visits; supervisors all."""
    visits = path == "/agent/visits" or path.startswith("/agent/visits/")
    if session.field:
        return visits or path == "/agent/logout"
    return session.supervisor or not visits


@web.middleware
async def _csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every form posts its CSRF token; a browser's Origin, when sent, must be ours."""
    if not _console(request):
        return await handler(request)
    if request.method == "GET":
        if request.path == "/agent/ws" and not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        return await handler(request)
    if not _same_origin(request):
        log.warning("console: cross-origin form refused (%s)", request.path)
        raise web.HTTPForbidden(text="cross-origin form refused")
    if request.path.startswith("/agent/visits/"):  # a visit's whole record in one form: notes in Chinese, %-encoded
        request = request.clone(client_max_size=VISIT_FORM_BYTES)
    try:
        form = await request.post()
    except (UnicodeError, LookupError, TypeError, ValueError):  # a charset or multipart body aiohttp cannot read
        raise web.HTTPBadRequest(text="the form could not be read: send it as UTF-8") from None
    sent = str(form.get("csrf", ""))
    # Before sign-in the token is a cookie's twin (double submit); after, the session's.
    session = request.get("session")
    expected = request.cookies.get(LOGIN_COOKIE, "") if session is None else session.csrf
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("console: form without a valid CSRF token refused (%s; %s)", request.path,
                    "no token sent" if not sent else "no cookie" if not expected else "mismatch")
        raise web.HTTPForbidden(text="the form is stale or forged: reload the page and try again")
    return await handler(request)


@web.middleware
async def _signed_flash(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A redirect carrying a message (``?m=``) is signed for this session, so that a crafted link shows nothing."""
    try:
        return await handler(request)
    except web.HTTPSeeOther as redirect:
        session = request.get("session")
        target = urlparse(str(redirect.location))
        query = parse_qsl(target.query)
        if session is not None and _console(request) and any(name == "m" for name, _ in query):
            redirect.headers["Location"] += "&" + urlencode({"s": _flash_signature(session, query)})
        raise


def _flash_signature(session: Session, pairs: list[tuple[str, str]]) -> str:
    message = urlencode(sorted((k, v) for k, v in pairs if k != "s")).encode()
    return hmac.new(session.csrf.encode(), message, hashlib.sha256).hexdigest()[:32]


def shown_flash(request: web.Request) -> str:
    """The redirect's message, if this session's own action signed it; "" for a crafted or stale link."""
    session = request.get("session")
    sent = request.query.get("s", "")
    if session is None or not sent:
        return ""
    expected = _flash_signature(session, list(request.query.items()))
    return flash_text(request.query) if hmac.compare_digest(sent.encode(), expected.encode()) else ""


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # non-browser clients; the CSRF token still applies to forms
        return True
    ours = {f"{request.scheme}://{request.host}", _origin(services_of(request).settings.public_base_url)}
    return origin in ours


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def services_of(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def session_of(request: web.Request) -> Session:
    session: Session = request["session"]
    return session


# --- signing in and out ------------------------------------------------------------------------


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", status=status, csrf=token, error=error)
    response.set_cookie(LOGIN_COOKIE, token, secure=True, httponly=True, samesite="Strict", path="/")
    return response


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username", "")).strip().lower(), str(form.get("password", ""))
    try:
        token = await services_of(request).agents.login(username, password, request.remote or "unknown")
    except LoginRefused as refused:
        log.info("console login refused (%s)", "locked" if refused.locked else "wrong credentials")
        return await login_page(request, str(refused), status=429 if refused.locked else 401)
    response = web.HTTPSeeOther("/agent/")
    response.set_cookie(SESSION_COOKIE, token, secure=True, httponly=True, samesite="Strict", path="/")
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    await services_of(request).agents.logout(request.cookies.get(SESSION_COOKIE, ""), session_of(request).username)
    response = web.HTTPSeeOther("/agent/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# --- the queue ---------------------------------------------------------------------------------


async def queue_page(request: web.Request) -> web.Response:
    """The queue: waiting conversations, and those held (one's own, or everyone's for a supervisor)."""
    await audit_event(request, "view_queue")
    context = await _queue_context(request)
    return render(request, "queue.html", reasons=HANDOFF_REASONS, flash=shown_flash(request), **context)


async def queue_rows(request: web.Request) -> web.Response:
    return render(request, "queue_rows.html", **await _queue_context(request))


async def _queue_context(request: web.Request) -> dict[str, Any]:
    """Waiting items for everyone (offered first to agents on shift); held ones only the holder's own, or all
    of them for a supervisor."""
    session, svc = session_of(request), services_of(request)
    reason, priority = request.query.get("reason", ""), request.query.get("priority", "")
    everything = await _offered(svc, await svc.handoffs.items())
    items = [i for i in everything
             if (not reason or i.reason == reason) and (not priority or str(i.priority) == priority)
             and (i.agent is None or session.supervisor or i.agent == session.username)]
    now = time.time()
    return {"waiting": [i for i in items if i.agent is None], "held": [i for i in items if i.agent is not None],
            "now": now, "reason": reason, "priority": priority, "clocks": _clocks(request, items, now),
            "desk": await svc.agents.desk(session.username),
            "holding": _holding(everything, session.username)}


async def _offered(svc: Services, items: list[Item]) -> list[Item]:
    """The items with the offers made now (bot.domain.assignment) on the waiting ones."""
    waiting = [Waiting(i.conversation_id, await _language_of(svc, i.conversation_id), i.offered_to)
               for i in items if i.agent is None]
    desks = [d for d in [await svc.agents.desk(u) for u in await svc.agents.usernames()] if d is not None]
    held = Counter(i.agent for i in items if i.agent is not None)
    chosen = await Assigner(svc.redis).apply(waiting, desks, dict(held))
    return [dataclasses.replace(i, offered_to=chosen[i.conversation_id]) if i.conversation_id in chosen else i
            for i in items]


def _holding(items: list[Item], username: str) -> int:
    """How many conversations the agent holds now."""
    return sum(i.agent == username for i in items)


async def _language_of(svc: Services, conversation_id: str) -> str:
    chosen = await svc.records.language(conversation_id)
    account = None if chosen else await svc.ledger.for_conversation(conversation_id)
    return chosen or (account.language if account else "zh")


async def shift(request: web.Request) -> web.Response:
    """Start or end the agent's shift."""
    svc, session = services_of(request), session_of(request)
    on = (await request.post()).get("on") == "1"
    await svc.agents.shift(session.username, on)
    await svc.redis.publish(keys.CONSOLE_EVENTS, console_notice("queue", ""))
    raise _back_to_queue("shift_started" if on else "shift_ended")


def _clocks(request: web.Request, items: list[Item], now: float) -> dict[str, sla.Clock]:
    """Each conversation's running reply clock, by conversation id (none once its latest message is answered)."""
    targets = services_of(request).sla
    return {i.conversation_id: c for i in items if (c := sla.clock(targets, i, now)) is not None}


async def sla_page(request: web.Request) -> web.Response:
    """For supervisors: conversations over or near their reply target now, and the late replies on record."""
    session = session_of(request)
    if not session.supervisor:
        await audit_event(request, "denied", path="sla")
        raise web.HTTPForbidden(text="only supervisors see the service-level list")
    items = await services_of(request).handoffs.items()
    clocks = _clocks(request, items, time.time())
    late = [(i, clocks[i.conversation_id]) for i in items if clocks.get(i.conversation_id)
            and clocks[i.conversation_id].state != "ok"]
    late.sort(key=lambda pair: (pair[1].state != "breached", pair[1].target - pair[1].minutes))
    entries = await services_of(request).redis.xrevrange(keys.SLA_BREACHES, count=100)
    recorded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    await audit_event(request, "view_sla")
    return render(request, "sla.html", late=late, recorded=recorded, zone=services_of(request).sla.calendar.zone)


async def notices(request: web.Request) -> web.WebSocketResponse:
    """Live notices (a conversation id and a kind, no personal data) until the page closes."""
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    request.app[SOCKETS].add(socket)
    pubsub = services_of(request).redis.pubsub()
    await pubsub.subscribe(keys.CONSOLE_EVENTS)
    forwarding = asyncio.create_task(_forward(request, pubsub, socket))
    try:
        async for message in socket:  # the page says nothing; this waits for it to go
            if message.type == WSMsgType.ERROR:
                break
    finally:
        forwarding.cancel()
        await asyncio.gather(forwarding, return_exceptions=True)
        await pubsub.close()
        request.app[SOCKETS].discard(socket)
    return socket


async def _forward(request: web.Request, pubsub: Any, socket: web.WebSocketResponse) -> None:
    """Forward notices; on any failure close the socket, so that the page reconnects rather than go stale."""
    try:
        await _forward_notices(request, pubsub, socket)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the page must know it is no longer live
        log.error("console notices stopped: %s", type(exc).__name__)
        await socket.close(message=b"notices unavailable")


async def _forward_notices(request: web.Request, pubsub: Any, socket: web.WebSocketResponse) -> None:
    session, svc = session_of(request), services_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    while not socket.closed:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
        if await svc.agents.session(token, refresh=False) is None:
            await socket.close(message=b"signed out")
            return
        if message is None:
            continue
        notice = json.loads(message["data"])
        # Someone else's conversation: not even that it moved.
        if notice["type"] == "message" and not session.supervisor and (
                await svc.handoffs.holder(notice["conversation"]) != session.username):
            continue
        await socket.send_str(json.dumps(notice))


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for socket in list(sockets):
        await socket.close(message=b"server shutting down")


# --- search ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Found:
    account_id: str
    phone: str
    conversation: str
    state: str
    open: bool
    claimable: bool


async def search_page(request: web.Request) -> web.Response:
    return render(request, "search.html", query="", searched=False, results=[])


async def search(request: web.Request) -> web.Response:
    """Find a conversation by account id or phone number (posted, so that no number is in a URL or a log).

    A number is turned into its pseudonym and looked up by that; the audit keeps what kind of search
    it was and the account found, never the number. Agents find what they may act on (waiting or
    their own); supervisors find any account.
    """
    query = str((await request.post()).get("q", "")).strip()[:40]
    kind, account = await _look_up(services_of(request), query)
    found = [await _found(request, account)] if account else []
    shown = [f for f in found if f.open or f.claimable or session_of(request).supervisor]
    await audit_event(request, "search", kind=kind, found=",".join(f.account_id for f in shown) or "-")
    return render(request, "search.html", query=query if kind == "account_id" else "", searched=True,
                  results=shown, unreadable=kind == "unreadable")


async def _look_up(svc: Services, query: str) -> tuple[str, Account | None]:
    """What the query is (account_id, phone or unreadable) and the account it names, if any."""
    account = await svc.ledger.get(query) if _ACCOUNT_ID.fullmatch(query) else None
    if account is not None:
        return "account_id", account
    number = read_phone(query)
    if number is not None and not number[1]:  # a number and nothing else
        return "phone", await svc.ledger.for_conversation(pseudonym(number[0], svc.settings.hmac_secret))
    return ("account_id" if _ACCOUNT_ID.fullmatch(query) else "unreadable"), None


async def _found(request: web.Request, account: Account) -> Found:
    svc, session = services_of(request), session_of(request)
    conversation = pseudonym(account.phone, svc.settings.hmac_secret)
    item = await svc.handoffs.item(conversation)
    state = "not handed off" if item is None else f"held by {item.agent}" if item.agent else "waiting"
    mine = item is not None and item.agent == session.username
    return Found(account.account_id, account.phone if session.supervisor else mask_phone(account.phone),
                 conversation, state, open=session.supervisor or mine, claimable=item is not None and not item.agent)


# --- one conversation --------------------------------------------------------------------------


async def _viewable(request: web.Request, audited: bool = True) -> tuple[str, Item | None, Account]:
    """The conversation, its handoff item and account, if this session may see them (a refusal is audited
    unless ``audited`` is False: a page's heartbeat after the conversation changed hands).

    Raises:
        web.HTTPForbidden: an agent asking for a conversation they do not hold.
        web.HTTPNotFound: no such borrower.
    """
    conversation_id = request.match_info["conversation"]
    session, svc = session_of(request), services_of(request)
    item = await svc.handoffs.item(conversation_id)
    if not session.supervisor and (item is None or item.agent != session.username):
        if audited:
            await audit_event(request, "denied", conversation=conversation_id)
        raise web.HTTPForbidden(text="this conversation is not yours: claim it from the queue first")
    account = await svc.ledger.for_conversation(conversation_id)
    if account is None:
        raise web.HTTPNotFound(text="no borrower has this conversation")
    return conversation_id, item, account


async def conversation_page(request: web.Request) -> web.Response:
    conversation_id, item, account = await _viewable(request)
    svc, session = services_of(request), session_of(request)
    await audit_event(request, "view_conversation", conversation=conversation_id, account_id=account.account_id)
    viewers = await Presence(svc.redis).others(conversation_id, session.username)  # the page then says it is here
    language = await svc.records.language(conversation_id) or account.language
    verified = await _verified(svc, conversation_id, account)
    return render(
        request, "conversation.html", conversation=conversation_id, item=item, language=language,
        verified=verified, borrower=_borrower(account, session, verified),
        summary=await account_summary(svc, account.account_id), outcomes=await svc.handoffs.outcomes(
            account.account_id), contact=await _contact(svc, account),
        entries=await _entries(request, conversation_id), zone=ZoneInfo(account.timezone),
        quick_replies=await _quick_replies(request, language, session.username, account, verified),
        nonce=secrets.token_urlsafe(16),
        outcome_codes=OUTCOMES, agents=await svc.agents.usernames() if session.supervisor else [],
        mine=item is not None and item.agent == session.username, flash=shown_flash(request),
        max_reply=MAX_REPLY_CHARACTERS, promise_max_days=svc.settings.promise_max_days, viewers=viewers,
        clock=sla.clock(svc.sla, item, time.time()) if item else None,
    )


async def export_pdf(request: web.Request) -> web.Response:
    """A conversation's transcript and ledger view as a PDF for a complaint file: supervisors only, audited."""
    conversation_id, _, account = await _viewable(request)
    svc, session = services_of(request), session_of(request)
    if not session.supervisor:
        await audit_event(request, "denied", conversation=conversation_id)
        raise web.HTTPForbidden(text="only supervisors export conversations")
    zone = ZoneInfo(account.timezone)
    html = request.app[TEMPLATES].get_template("export.html").render(
        conversation=conversation_id, account=account, summary=await account_summary(svc, account.account_id),
        outcomes=await svc.handoffs.outcomes(account.account_id, count=OUTCOMES_KEPT),
        entries=await transcripts.read(svc.redis, svc.vault, conversation_id), zone=zone, when=_when,
        language=await svc.records.language(conversation_id) or account.language, supervisor=session.username,
        exported_at=_when(datetime.now(zone), zone))
    async with RENDERING:  # off the event loop, one at a time
        pdf = await asyncio.to_thread(render_pdf, html)
    await audit_event(request, "export_transcript", conversation=conversation_id, account_id=account.account_id)
    response = web.Response(body=pdf, content_type="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="conversation-{account.account_id}.pdf"'
    return response


async def presence(request: web.Request) -> web.Response:
    """The page is still open (or, with ``leave``, closing): who else has it open, as JSON."""
    conversation_id, _, _ = await _viewable(request, audited=False)
    form = await request.post()
    if form.get("leave"):
        session = session_of(request)
        await Presence(services_of(request).redis).left(conversation_id, Viewer(session.username, session.role))
        await services_of(request).redis.publish(keys.CONSOLE_EVENTS, console_notice("viewers", conversation_id))
        return web.json_response({"others": []})
    viewers = await _present(request, conversation_id)
    return web.json_response({"others": [dataclasses.asdict(v) for v in viewers]})


async def _present(request: web.Request, conversation_id: str) -> list[Viewer]:
    """Note this session's viewer on the page (telling the others' pages when they arrive); the others."""
    session, svc = session_of(request), services_of(request)
    here = Presence(svc.redis)
    if await here.seen(conversation_id, Viewer(session.username, session.role)):
        await svc.redis.publish(keys.CONSOLE_EVENTS, console_notice("viewers", conversation_id))
    return await here.others(conversation_id, session.username)


async def transcript_part(request: web.Request) -> web.Response:
    conversation_id, _, account = await _viewable(request)
    await audit_event(request, "view_transcript", conversation=conversation_id, account_id=account.account_id)
    return render(request, "transcript.html", entries=await _entries(request, conversation_id),
                   zone=ZoneInfo(account.timezone))


async def _entries(request: web.Request, conversation_id: str) -> list[transcripts.Entry]:
    """The transcript; for agents, digits that look like phone numbers, ID digits or birth dates masked
    (a borrower's verification answers are not for every agent to read)."""
    svc = services_of(request)
    entries = await transcripts.read(svc.redis, svc.vault, conversation_id)
    if session_of(request).supervisor:
        return entries
    return [dataclasses.replace(e, text=mask_text(e.text)) if e.who == "borrower" else e for e in entries]


async def _verified(svc: Services, conversation_id: str, account: Account) -> bool:
    """Whether the borrower passed verification in the current session (the live tracker's slot)."""
    sealed = await svc.redis.get(keys.tracker(conversation_id))
    if not sealed:
        return False
    verified = None
    for event in svc.vault.open(sealed).get("events", []):
        if event.get("event") == "slot" and event.get("name") == "verified_account":
            verified = event.get("value")
        elif event.get("event") == "session_started":
            verified = None
    return verified == account.account_id


def _borrower(account: Account, session: Session, verified: bool) -> dict[str, str]:
    """Who the borrower is, as far as the role needs: agents see a masked number and no address
    detail, and the name only once the borrower is verified; verification answers are never shown."""
    if session.supervisor:
        return {"name": account.name, "phone": account.phone, "address": account.address}
    return {"name": account.name if verified else "", "phone": mask_phone(account.phone),
            "address": (account.address[:3] + "…") if account.address else ""}


async def _contact(svc: Services, account: Account) -> dict[str, Any]:
    """Recent contact attempts and what the contact policy would say about a reminder now."""
    attempts = await svc.policy.attempts(account.account_id)
    decisions = {channel: await svc.policy.decide(account, channel, record=False) for channel in ("sms", "call")}
    return {"attempts": attempts[-10:], "decisions": decisions}


async def _quick_replies(request: web.Request, language: str, agent: str, account: Account,
                         verified: bool) -> list[tuple[str, str]]:
    """The quick replies in the borrower's language, filled in; the ones with the account's figures only
    once the borrower is verified (the same rule as the bot's: nothing owed is said before)."""
    settings = services_of(request).settings
    values: dict[str, Any] = {"agent_name": agent, "bank_phone": settings.bank_phone,
                              "agent_hours": settings.agent_hours}
    names = list(QUICK_REPLIES)
    if verified:
        figures = await _account_figures(services_of(request), account, language)
        values.update(figures)
        names[1:1] = [n for n, needs in FIGURE_REPLIES.items() if needs <= figures.keys()]
    return [(name, catalog.render(catalog.responses(), name, language, "sms", **values)) for name in names]


async def _account_figures(svc: Services, account: Account, language: str) -> dict[str, Any]:
    """What the figure replies fill in: the overdue amount, its oldest due date, a payment link, the plan."""
    due = overdue(account, local_today(account))
    figures: dict[str, Any] = {}
    if due.amount > 0 and due.oldest_due is not None:
        ttl = svc.settings.payment_link_ttl_hours
        figures.update(overdue_amount=money(due.amount, account.currency, language),
                       oldest_due=long_date(due.oldest_due, language), link_hours=ttl,
                       payment_link=payment_link(svc.settings.payment_url_template, account.account_id,
                                                 svc.settings.hmac_secret, ttl))
    arrangement = await svc.arrangements.current(account.account_id)
    if arrangement and arrangement["offer"]["kind"] == "plan":
        plan = Offer.from_record(arrangement["offer"])
        figures.update(count=plan.count, regular=money(plan.regular, account.currency, language),
                       first_due=long_date(plan.first_due, language), last_due=long_date(plan.last_due, language),
                       total=money(plan.total, account.currency, language))
    return figures


# --- actions on a conversation -----------------------------------------------------------------


async def claim(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation"]
    svc, session = services_of(request), session_of(request)
    desk = await svc.agents.desk(session.username)
    capacity = desk.capacity if desk is not None and not session.supervisor else None  # supervisors: no cap
    if capacity is not None and _holding(await svc.handoffs.items(), session.username) >= capacity:
        raise _back_to_queue("at_capacity", capacity=capacity)
    if not await svc.handoffs.claim(conversation_id, session.username):
        raise _back_to_queue("taken_by_someone_else")
    await _tell_rasa(request, conversation_id, [transcripts.control_event("pause")])
    raise web.HTTPSeeOther(f"/agent/c/{conversation_id}")


async def reply(request: web.Request) -> web.Response:
    """Send the agent's words to the borrower by SMS, through the contact policy, once per form."""
    conversation_id, account = await _held(request)
    form = await request.post()
    text, nonce = str(form.get("text", "")).strip(), str(form.get("nonce", ""))
    if not text or len(text) > MAX_REPLY_CHARACTERS or not _NONCE.fullmatch(nonce):
        raise _back(conversation_id, "reply_length", limit=MAX_REPLY_CHARACTERS)
    svc, session = services_of(request), session_of(request)
    try:
        sent = await request.config_dict[SENDER].sms(account, text, f"agent:{conversation_id}:{nonce}",
                                                     purpose="agent_reply")
    except ValueError as exc:  # more than three SMS segments
        raise _back(conversation_id, "invalid", detail=str(exc)) from None
    except TwilioRestException as exc:
        log.error("agent reply refused by Twilio: %s", exc.code)
        raise _back(conversation_id, "twilio_refused", error=exc.code) from None
    await audit_event(request, "reply", conversation=conversation_id, outcome=sent.outcome)
    if sent.outcome == "blocked":
        raise _back(conversation_id, "not_sent", reason=sent.reason)
    if sent.outcome == "queued":
        await _reply_clocks_stop(svc, conversation_id, session.username)
        await _tell_rasa(request, conversation_id, [transcripts.agent_event(text, session.username)])
        await svc.redis.publish(keys.CONSOLE_EVENTS, console_notice("message", conversation_id))
    raise _back(conversation_id, "sent" if sent.outcome == "queued" else "already_sent")


async def _reply_clocks_stop(svc: Services, conversation_id: str, agent: str) -> None:
    """The reply stops the running clock; a reply later than its target is kept in the breaches stream."""
    item, now = await svc.handoffs.item(conversation_id), time.time()
    running = sla.clock(svc.sla, item, now) if item else None
    if item and running and running.state == "breached":
        await svc.redis.xadd(keys.SLA_BREACHES, sla.breach_record(item, running, agent, now), maxlen=10_000,
                             approximate=True)
    await svc.handoffs.replied(conversation_id, now)


async def verify(request: web.Request) -> web.Response:
    """Check the borrower's latest message as a verification answer, the same way the bot does.

    The agent never sees the birth date or ID digits: the server compares, and a failure
    counts towards the same 3-attempt, 24-hour lock as the bot's.
    """
    conversation_id, account = await _held(request)
    svc = services_of(request)
    if await svc.records.disclosure_blocked(conversation_id):
        raise _back(conversation_id, "third_party")
    if await svc.records.verification_failures(account.account_id) >= verification.MAX_ATTEMPTS:
        raise _back(conversation_id, "verification_locked")
    said = [e for e in await transcripts.read(svc.redis, svc.vault, conversation_id) if e.who == "borrower"]
    if not said or not verification.matches(account, verification.read_answer(said[-1].text)):
        failures = await svc.records.verification_failed(account.account_id)
        await audit_event(request, "verify", conversation=conversation_id, outcome="failed")
        raise _back(conversation_id, "not_verified", failures=failures, limit=verification.MAX_ATTEMPTS)
    try:
        await rasa_client.append(request.config_dict[HTTP], svc.settings, conversation_id,
                                 [{"event": "slot", "name": "verified_account", "value": account.account_id}])
    except rasa_client.TrackerUnavailable:
        raise _back(conversation_id, "bot_unavailable") from None
    await svc.records.verification_passed(account.account_id)
    await audit_event(request, "verify", conversation=conversation_id, outcome="passed")
    raise _back(conversation_id, "verified")


async def hand_back(request: web.Request) -> web.Response:
    """Give the conversation back to the bot, which answers the borrower's next message."""
    conversation_id, _ = await _held(request)
    svc = services_of(request)
    async with svc.redis.lock(keys.route_lock(conversation_id), timeout=30, blocking_timeout=30):
        await _resume_bot(request, conversation_id)
        if not await svc.handoffs.hand_back(conversation_id, session_of(request).username):
            raise _back_to_queue("no_longer_yours")
    raise _back_to_queue("handed_back")


async def _resume_bot(request: web.Request, conversation_id: str) -> None:
    """Unpause the Rasa conversation before letting go: a paused one would never answer again.

    Raises:
        web.HTTPSeeOther: back to the conversation, still held, when Rasa is unavailable.
    """
    try:
        await rasa_client.append(request.config_dict[HTTP], services_of(request).settings, conversation_id,
                                 [transcripts.control_event("resume"), *transcripts.forget_questions()])
    except rasa_client.TrackerUnavailable:
        raise _back(conversation_id, "bot_unavailable_kept") from None


async def close(request: web.Request) -> web.Response:
    """Close with an outcome code and a note; a promise outcome records the promised day."""
    conversation_id, account = await _held(request)
    svc, session = services_of(request), session_of(request)
    form = await request.post()
    outcome, note = str(form.get("outcome", "")), str(form.get("note", "")).strip()
    item = await svc.handoffs.item(conversation_id)
    if item is None:
        raise _back_to_queue("no_longer_yours")
    try:
        promise = _promise(form, account, svc.settings.promise_max_days) if outcome == "promise" else None
        check_outcome(outcome, note, promise)
    except ValueError as exc:
        raise _back(conversation_id, "invalid", detail=str(exc)) from None
    async with svc.redis.lock(keys.route_lock(conversation_id), timeout=30, blocking_timeout=30):
        await _resume_bot(request, conversation_id)
        if not await svc.handoffs.close(item, session.username, outcome, note, promise):
            raise _back_to_queue("no_longer_yours")
    if form.get("lift_holds") and item.reason in HOLDING_REASONS and outcome != "dispute_opened":
        await svc.redis.hdel(keys.hold(account.account_id), item.reason)  # this case's hold, no other
        await audit_event(request, "hold_lifted", account_id=account.account_id, reason=item.reason)
    raise _back_to_queue("closed", outcome=outcome.replace("_", " "))


def _promise(form: Any, account: Account, max_days: int) -> tuple[date, Any, Any]:
    """The promised day from the close form, within the same window the bot allows.

    Raises:
        ValueError: no date, not a real date, or outside today .. today + max_days.
    """
    try:
        day = date.fromisoformat(str(form.get("promise_date", "")))
    except ValueError:
        raise ValueError("a promise outcome needs the promised date (YYYY-MM-DD)") from None
    today = local_today(account)
    if not today <= day <= today + timedelta(days=max_days):
        raise ValueError(f"the promised date must be from {today.isoformat()} to {max_days} days later")
    return day, overdue(account, today).amount, total_paid(account)


async def reassign(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation"]
    svc, session = services_of(request), session_of(request)
    if not session.supervisor:
        await audit_event(request, "denied", conversation=conversation_id)
        raise web.HTTPForbidden(text="only supervisors reassign conversations")
    form = await request.post()
    to_agent = str(form.get("agent", ""))
    if to_agent not in await svc.agents.usernames():
        raise _back_to_queue("no_such_agent")
    if not await svc.handoffs.reassign(conversation_id, to_agent, session.username):
        raise _back_to_queue("not_held")
    raise _back_to_queue("reassigned", agent=to_agent)


async def _held(request: web.Request) -> tuple[str, Account]:
    """The conversation and account, if this session's agent holds it (supervisors reassign to themselves first).

    Raises:
        web.HTTPForbidden: someone else holds it, or nobody does.
    """
    conversation_id = request.match_info["conversation"]
    svc, session = services_of(request), session_of(request)
    if await svc.handoffs.holder(conversation_id) != session.username:
        await audit_event(request, "denied", conversation=conversation_id)
        raise web.HTTPForbidden(text="only the agent holding this conversation can act on it")
    account = await svc.ledger.for_conversation(conversation_id)
    if account is None:
        raise web.HTTPNotFound(text="no borrower has this conversation")
    return conversation_id, account


async def _tell_rasa(request: web.Request, conversation_id: str, events: list[dict[str, Any]]) -> None:
    """Record the change in the conversation's tracker; if Rasa is down, the console goes on."""
    with contextlib.suppress(rasa_client.TrackerUnavailable):
        await rasa_client.append(request.config_dict[HTTP], services_of(request).settings, conversation_id, events)


def _back(conversation_id: str, code: str, **values: object) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/agent/c/{conversation_id}?" + urlencode({"m": code, **values}))


def _back_to_queue(code: str, **values: object) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/agent/?" + urlencode({"m": code, **values}))


def flash_text(query: Mapping[str, str]) -> str:
    """The message a redirect's ``?m=<code>&<values>`` names (console/templates/flash.yml); "" if unknown."""
    template = _flash_messages().get(query.get("m", ""))
    return template.format_map(_Blank(query)) if template else ""


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


@functools.lru_cache(maxsize=1)
def _flash_messages() -> dict[str, str]:
    return dict(yaml.safe_load((HERE / "templates" / "flash.yml").read_text(encoding="utf-8")))


# --- rendering and audit -----------------------------------------------------------------------


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request.get("session")
    html = request.app[TEMPLATES].get_template(template).render(
        session=session, csrf=context.pop("csrf", session.csrf if session else ""), when=_when, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _when(moment: datetime | float, zone: ZoneInfo | None = None) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, ZoneInfo("UTC"))
    return moment.astimezone(zone or ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M %Z")


async def audit_event(request: web.Request, event: str, **fields: str) -> None:
    await audit.record(services_of(request).redis, event, agent=session_of(request).username, **fields)
