"""The agent console under /agent/ as an attacker would try it: no session, forged, expired and signed-out
cookies, another role's session, forged, missing and borrowed CSRF tokens, foreign origins, odd methods,
path traversal and encoded slashes, random form fields on every POST route, and the login form.

The expected answer of every request comes from tests/fuzz/console_model.py (which states the rules),
fed with the path as the server decodes it. Beyond the status: no 500 ever (an outermost middleware
records any crash), the security headers on every console answer, /healthz still 200, and no Redis
write but the documented ones, asserted exactly:

- the audit stream gets the entries the model names (``denied`` for a refused role or conversation,
  ``view_*`` for pages shown), appended, nothing else changed in it;
- an expired session's key is deleted by the request that finds it expired;
- a failed login adds one to the username's and the address's failure counters and audits
  ``login_failed`` (or, when locked, audits ``login_locked`` once per lock and counts nothing).

Everything else a request does is the action it asks for, fuzzed with the database put back after
each example (alice's actions on the conversation she holds; an officer's visit forms).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import markupsafe
import pytest
import yarl
from hypothesis import assume, event, given
from hypothesis import strategies as st

from bot.console.desk import LOGIN_COOKIE, SECURITY_HEADERS, SESSION_COOKIE, flash_text
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.domain.agents import MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_USERNAME, USERNAME
from bot.domain.booking import slots_on
from bot.field.visits import ARRIVAL_CHECKS, CHECKLIST, INTERVIEW
from tests.fuzz import console_model as model
from tests.fuzz.helpers import (
    Gateway,
    audit_entries,
    changed_keys,
    new_audit_entries,
    raw_http,
    raw_request,
    restore,
    snapshot,
    snapshot_with_ttl,
)
from tests.fuzz.helpers import fuzz as fuzz_settings

PASSWORD = "correct horse battery"
USERS = {"alice": ("agent", ""), "bob": ("agent", ""), "sue": ("supervisor", ""), "wang": ("field", "SH-0417"),
         "chen": ("field", "SH-0522"), "liu": ("field", "SH-0608")}
HELD_ACCOUNT, WAITING_ACCOUNT, VISIT_ACCOUNT = "CN001", "US001", "CN001"  # samples/accounts.csv
FORM = "application/x-www-form-urlencoded"
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")  # aiohttp reads a form only for these (and TRACE)


@dataclass(repr=False)
class Console:
    gateway: Gateway
    tokens: dict[str, str]  # username: session cookie
    csrf: dict[str, str]  # username: the session's CSRF token
    signed_out: str  # a session cookie whose session ended
    world: model.World

    def __repr__(self) -> str:
        return "Console(...)"

    def who(self, username: str) -> model.Who:
        role, staff_id = USERS[username]
        return model.Who(username, role, staff_id)


async def sign_in(gateway: Gateway, username: str) -> str:
    page = await raw_http(gateway.port, raw_request("GET", "/agent/login", gateway.port, content_length=False))
    token = re.search(rf"{LOGIN_COOKIE}=([^;]+)", page.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    body = urlencode({"username": username, "password": PASSWORD, "csrf": token}).encode()
    response = await raw_http(gateway.port, raw_request("POST", "/agent/login", gateway.port, {
        "Content-Type": FORM, "Cookie": f"{LOGIN_COOKIE}={token}"}, body))
    assert response.status == 303, response.body
    return re.search(rf"{SESSION_COOKIE}=([^;]+)", response.headers["set-cookie"]).group(1)  # type: ignore[union-attr]


@pytest.fixture
async def console(gateway: Gateway) -> Console:
    svc = gateway.services
    for username, (role, staff_id) in USERS.items():
        await svc.agents.add(username, PASSWORD, role, staff_id)
    held = pseudonym("+8613800138000", svc.settings.hmac_secret)
    waiting = pseudonym("+14155550123", svc.settings.hmac_secret)
    await svc.records.hand_off(held, HELD_ACCOUNT, "request_human")
    await svc.records.hand_off(waiting, WAITING_ACCOUNT, "request_human")
    assert await svc.handoffs.claim(held, "alice")
    region = svc.bookings.field_teams.region("SH")
    assert region is not None
    day = datetime.now(region.zone).date() + timedelta(days=1)
    while not slots_on(region, day):
        day += timedelta(days=1)
    slot = slots_on(region, day)[0]
    booking = await svc.bookings.book(held, VISIT_ACCOUNT, slot, {"place": "home", "address": "上海", "language": "zh"},
                                      now=slot.start - timedelta(days=1))
    assert booking is not None
    staff = frozenset(s.staff_id for s in booking.staff)
    assert {"SH-0417", "SH-0522"} == staff
    tokens = {username: await sign_in(gateway, username) for username in USERS}
    csrf = {}
    for username, token in tokens.items():
        session = await svc.agents.session(token, refresh=False)
        assert session is not None
        csrf[username] = session.csrf
    signed_out = await sign_in(gateway, "bob")
    await svc.agents.logout(signed_out, "bob")
    world = model.World(held, HELD_ACCOUNT, waiting, WAITING_ACCOUNT, booking.booking_id, VISIT_ACCOUNT, staff,
                        frozenset(USERS))
    return Console(gateway, tokens, csrf, signed_out, world)


# --- strategies -----------------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
SEGMENTS = ("..", ".", "%2e%2e", "%2E%2e", "%2f", "%2F", "..%2f", "%2e%2e%2f", "%5c", "..%5c", "%00", ";", ";x=1",
            "%20", "~", "%7e", "", "login", "static", "visits", "c", "queue", "rows", "ws", "transcript", "claim",
            "logout", "console.js", "console.css", "etc", "passwd", "gateway.py", "__init__.py", "%252e%252e", "%c0%ae",
            "%ff", "%E4%B8%AD", "%3F", "%23", "*", "report.zh.pdf", "agent", "%2Fagent", "static%2f..%2f..")


@st.composite
def segments(draw: st.DrawFn) -> str:
    return draw(st.one_of(st.sampled_from(SEGMENTS), text.map(lambda t: quote(t, safe=""))))


REPORT_KINDS = ("pdf", "html")


@st.composite
def targets(draw: st.DrawFn, world: model.World) -> str:
    """A request target under /agent: a real route (ids real or random, characters maybe %-encoded) or junk."""
    cid = draw(st.one_of(st.sampled_from([world.held, world.waiting]),
                         st.from_regex(model.CONVERSATION, fullmatch=True)))
    bid = draw(st.one_of(st.just(world.booking), st.from_regex(model.BOOKING, fullmatch=True)))
    real = ["/agent", "/agent/", "/agent/login", "/agent/logout", "/agent/queue/rows", "/agent/ws",
            f"/agent/c/{cid}", f"/agent/c/{cid}/transcript", *(f"/agent/c/{cid}/{a}" for a in model.ACTIONS),
            "/agent/visits", f"/agent/visits/{bid}", *(f"/agent/visits/{bid}/{a}" for a in model.VISIT_ACTIONS),
            f"/agent/visits/{bid}/report.{draw(st.sampled_from(['zh', 'en']))}.{draw(st.sampled_from(REPORT_KINDS))}",
            "/agent/static/console.js", "/agent/static/console.css", "/agent/static/",
            f"/agent/c/{cid}/presence", f"/agent/c/{cid}/transcript.pdf", "/agent/search", "/agent/sla", "/agent/shift"]
    kind = draw(st.sampled_from(["route", "route", "encoded_route", "junk", "static_escape"]))
    if kind == "route":
        path = draw(st.sampled_from(real))
    elif kind == "encoded_route":  # the same route, with some characters %-encoded: the same path once decoded
        route = draw(st.sampled_from(real))
        path = "/" + "".join(f"%{ord(c):02X}" if draw(st.integers(0, 4)) == 0 else c for c in route[1:])
    elif kind == "static_escape":
        path = "/agent/static/" + "/".join(draw(st.lists(segments(), min_size=1, max_size=5)))
    else:
        prefix = draw(st.sampled_from(["/agent/", "/agent/c/", "/agent/visits/", "/agent/login", "/agent/static/",
                                       f"/agent/c/{cid}/", f"/agent/visits/{bid}/", "/agent//", "/agent;"]))
        path = prefix + "/".join(draw(st.lists(segments(), max_size=4)))
    if draw(st.integers(0, 3)) == 0:
        path += "?" + urlencode(draw(st.lists(st.tuples(st.sampled_from(["m", "day", "detail", "reason", "x"]),
                                                        st.one_of(text, st.sampled_from(["2026-12-01", "not-a-day",
                                                                                         "invalid", "closed"]))),
                                              max_size=2)))
    return path


def decoded(target: str) -> tuple[str, str, dict[str, str]]:
    """The path decoded (as the middlewares read it), the raw path (as the router matches it), and the
    query's first values."""
    raw_path, _, query = target.partition("?")
    url = yarl.URL.build(path=raw_path, query_string=query, encoded=True)
    return url.path, raw_path, {k: url.query[k] for k in url.query}


def ours(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.port}"


def origins(gateway: Gateway) -> st.SearchStrategy[str | None]:
    return st.sampled_from([None, None, ours(gateway), "https://bot.example-bank.test", "https://evil.example",
                            "null", "http://127.0.0.1", ours(gateway) + "/", "https://bot.example-bank.test.evil.example"])


def origin_ok(gateway: Gateway, origin: str | None) -> bool:
    return origin is None or origin in (ours(gateway), "https://bot.example-bank.test")


FIELD_NAMES = ("csrf", "text", "nonce", "outcome", "note", "promise_date", "lift_holds", "agent", "username",
               "password", "version", "result", "staff_present", "m", "detail")
form_pairs = st.lists(st.tuples(st.one_of(st.sampled_from(FIELD_NAMES), text), st.one_of(text, st.sampled_from(
    ["<script>alert(1)</script>", "alice", "bob", "1", "yes", "2026-12-01", "x" * 600, "=cmd|' /C calc'!A0"]))),
                      max_size=5)


async def _send(gateway: Gateway, method: str, target: str, headers: dict[str, str], typed_body: tuple[str, bytes],
                origin: str | None) -> tuple[Any, Any, Any]:
    """One raw request; returns the response, and the Redis snapshot and audit entries from before it."""
    content_type, body = typed_body
    if method in BODY_METHODS:
        headers["Content-Type"] = content_type
    if origin is not None:
        headers["Origin"] = origin
    before, audit_before = await snapshot(gateway.redis), await audit_entries(gateway.redis)
    gateway.recorder.seen.clear()
    response = await raw_http(gateway.port, raw_request(method, target, gateway.port, headers,
                                                        body if method in BODY_METHODS else b""))
    return response, before, audit_before


def body_of(pairs: list[tuple[str, str]], kind: str) -> tuple[str, bytes]:
    """The Content-Type and body of a form: urlencoded, multipart (both parsed by aiohttp), JSON (not a form),
    or a form aiohttp cannot read: a charset it cannot decode with, multipart without a boundary."""
    if kind == "bad_charset":
        return f"{FORM}; charset=undefined", urlencode(pairs).encode()
    if kind == "no_boundary":
        return "multipart/form-data", urlencode(pairs).encode()
    if kind == "multipart":
        boundary = "fuzzfuzzfuzz"
        parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(k)}"\r\n\r\n{v}\r\n'
                        for k, v in pairs)
        return f"multipart/form-data; boundary={boundary}", (parts + f"--{boundary}--\r\n").encode()
    if kind == "json":
        return "application/json", json.dumps(dict(pairs)).encode()
    return FORM, urlencode(pairs).encode()


def unreadable(pairs: list[tuple[str, str]], kind: str, method: str) -> bool:
    """Whether aiohttp's request.post() fails on this body (only read for the methods that carry a form)."""
    return method in BODY_METHODS and (kind == "no_boundary" or (kind == "bad_charset" and bool(pairs)))


def first(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k == name), None)


def form_carries(pairs: list[tuple[str, str]], kind: str, method: str, token: str) -> bool:
    """Whether the server reads ``token`` as the form's csrf (its first value; only a form body, for a method
    aiohttp reads forms for)."""
    sent = first(pairs, "csrf") if kind in ("form", "multipart") and method in BODY_METHODS else None
    return bool(token) and sent == token


def check_console_headers(response: Any, path: str, gateway: Gateway) -> None:
    """Every console answer that reached the application carries the security headers."""
    if gateway.recorder.seen and model.is_console(path):
        for name, value in SECURITY_HEADERS.items():
            if name == "Content-Security-Policy":
                assert name.lower() in response.headers, (path, response.headers)
            else:
                assert response.headers.get(name.lower()) == value, (name, path, response.headers)


def audit_matches(actual: list[dict[str, str]], expected: list[dict[str, str]]) -> bool:
    """Entries equal, "*" in the expected standing for any value."""
    if len(actual) != len(expected):
        return False
    return all(a.keys() == e.keys() and all(v == "*" or a[k] == v for k, v in e.items())
               for a, e in zip(actual, expected, strict=True))


# --- no session -------------------------------------------------------------------------------------


def test_the_model_knows_every_route_the_gateway_serves(gateway: Gateway) -> None:
    """A new route must be added to tests/fuzz/console_model.py (and so to the fuzzing) before this passes."""
    served = {(r.method, r.resource.canonical) for r in gateway.client.server.app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert served == model.CANONICAL_ROUTES


@fuzz_settings(scale=3)
@given(data=st.data())
async def test_without_a_live_session_only_the_login_and_static_files_open(console: Console,
                                                                           data: st.DataObject) -> None:
    gateway = console.gateway
    method = data.draw(st.sampled_from(["GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"]),
                       label="method")
    target = data.draw(targets(console.world), label="target")
    path, raw, _ = decoded(target)
    cookie = data.draw(st.sampled_from(["none", "forged", "signed_out", "expired", "other_name", "login_only"]),
                       label="cookie")
    origin = data.draw(origins(gateway), label="origin")
    pairs = data.draw(form_pairs, label="form")
    kind = data.draw(st.sampled_from(["form", "form", "multipart", "json", "bad_charset", "no_boundary"]),
                     label="body")
    twin = data.draw(st.from_regex(r"[A-Za-z0-9_-]{8,43}", fullmatch=True), label="login cookie")
    if data.draw(st.booleans(), label="csrf twin"):
        pairs = [("csrf", twin), *pairs]
    csrf_twin = cookie != "none" and form_carries(pairs, kind, method, twin)
    assume(not (path == "/agent/login" and method == "POST" and csrf_twin and origin_ok(gateway, origin)
                and not unreadable(pairs, kind, method)))
    forged = data.draw(st.from_regex(r"[A-Za-z0-9_-]{1,60}", fullmatch=True), label="forged")
    cookies = {"none": "", "forged": f"{SESSION_COOKIE}={forged}",
               "signed_out": f"{SESSION_COOKIE}={console.signed_out}",
               "other_name": f"console={console.tokens['sue']}; __Secure-console={console.tokens['sue']}",
               "login_only": ""}
    expired_key = None
    if cookie == "expired":  # a real session, past its 12 hours
        token = await sign_in(gateway, "sue")
        expired_key = keys.agent_session(hashlib.sha256(token.encode()).hexdigest())
        await gateway.redis.hset(expired_key, "started", int(time.time()) - 13 * 3600)
        cookies["expired"] = f"{SESSION_COOKIE}={token}"
    # Every cookie state but "none" comes with a login cookie, the twin of the form's csrf when it has one.
    header_cookie = "; ".join(c for c in (cookies[cookie], f"{LOGIN_COOKIE}={twin}" if cookie != "none" else "")
                              if c)
    response, before, audit_before = await _send(gateway, method, target, {"Cookie": header_cookie},
                                                 body_of(pairs, kind), origin)
    expected = model.without_session(method, path, raw, origin_ok(gateway, origin), csrf_twin,
                                     unreadable(pairs, kind, method))
    event(f"{method} -> {expected.status}")
    assert gateway.recorder.last().path == path
    assert response.status == expected.status, (target, path, response.status, expected, response.body[:200])
    assert expected.matches_location(response.headers.get("location")), response.headers
    check_console_headers(response, path, gateway)
    after = await snapshot(gateway.redis)
    if expired_key is not None and model.is_console(path) and not model.is_open(path):  # deleted on sight
        assert changed_keys(before, after) == {expired_key.encode()} and expired_key.encode() not in after
    else:
        assert changed_keys(before, after) == set()
    assert await new_audit_entries(gateway.redis, audit_before) == []
    gateway.recorder.check()
    await gateway.healthy()


# --- another role, another session's token ----------------------------------------------------------


@pytest.mark.parametrize("username", ["bob", "sue", "wang", "liu"])  # agent, supervisor, officer on and off the visit
@fuzz_settings(scale=1.5)
@given(data=st.data())
async def test_each_role_reaches_only_its_pages_and_no_form_passes_without_its_token(console: Console, username: str,
                                                                                    data: st.DataObject) -> None:
    gateway, world = console.gateway, console.world
    who = console.who(username)
    method = data.draw(st.sampled_from(["GET", "POST", "GET", "POST", "HEAD", "PUT", "DELETE"]), label="method")
    target = data.draw(targets(world), label="target")
    path, raw, query = decoded(target)
    origin = data.draw(origins(gateway), label="origin")
    pairs = data.draw(form_pairs, label="form")
    kind = data.draw(st.sampled_from(["form", "form", "form", "multipart", "json", "bad_charset", "no_boundary"]),
                     label="body")
    token = data.draw(st.sampled_from(["own", "own", "missing", "forged", "other_session", "login_twin"]),
                      label="csrf")
    twin = "twin-token-0123456789"
    sent = {"own": console.csrf[username], "missing": None, "forged": "forged-0123456789",
            "other_session": console.csrf["alice" if username != "alice" else "bob"], "login_twin": twin}[token]
    if sent is not None:
        pairs = [("csrf", sent), *pairs]
    csrf_ok = form_carries(pairs, kind, method, console.csrf[username])
    csrf_twin = form_carries(pairs, kind, method, twin)
    form = {k: v for k, v in reversed(pairs)}
    # What the model leaves out: requests that would act (sign out, claim the waiting conversation,
    # reassign to a real agent, an officer's own visit form); those are other tests'.
    broken = unreadable(pairs, kind, method)
    if model.gate(who, method, path, origin_ok(gateway, origin), csrf_ok, csrf_twin, broken) is None:
        found = model.route(method, raw)
        assume(found.name not in ("logout", "login"))
        assume(not (found.name == "claim" and found.conversation == world.waiting))
        assume(found.name != "shift")
        assume(not (found.name == "presence" and who.supervisor and found.conversation in (world.held, world.waiting)))
        assume(not (found.name == "reassign" and who.supervisor and first(pairs, "agent") in world.usernames))
        assume(not (found.name in model.VISIT_ACTIONS and found.booking == world.booking
                    and who.staff_id in world.booking_staff))
    expected = model.with_session(who, method, path, raw, query, form, origin_ok(gateway, origin), csrf_ok,
                                  csrf_twin, world, broken)
    cookie = f"{SESSION_COOKIE}={console.tokens[username]}; {LOGIN_COOKIE}={twin}"
    response, before, audit_before = await _send(gateway, method, target, {"Cookie": cookie},
                                                 body_of(pairs, kind), origin)
    event(f"{who.role} {method} -> {expected.status} {expected.note}")
    assert gateway.recorder.last().path == path
    assert response.status == expected.status, (username, target, path, response.status, expected,
                                                response.body[:300])
    assert expected.matches_location(response.headers.get("location")), (expected, response.headers)
    check_console_headers(response, path, gateway)
    added = await new_audit_entries(gateway.redis, audit_before)
    assert audit_matches(added, expected.audit), (added, expected.audit)
    changed = changed_keys(before, await snapshot(gateway.redis))
    assert changed <= {keys.AUDIT_STREAM.encode()}, changed
    assert bool(changed) == bool(expected.audit)
    gateway.recorder.check()
    await gateway.healthy()


# --- the login form -----------------------------------------------------------------------------------

usernames = st.one_of(st.sampled_from(list(USERS)), st.sampled_from(["ALICE", " alice ", "alice\x00", "nobody",
                                                                   "a", "x" * 33, "' OR 1=1 --", "", "sue\n"]),
                      st.from_regex(USERNAME.pattern, fullmatch=True), text, st.text(min_size=1000, max_size=3000))


@fuzz_settings(scale=1)
@given(attempts=st.lists(st.tuples(usernames, st.one_of(text, st.just(PASSWORD + " "), st.just(""))),
                         min_size=1, max_size=8))
async def test_failed_logins_count_and_audit_exactly_and_lock(console: Console,
                                                              attempts: list[tuple[str, str]]) -> None:
    """Wrong credentials: 401, one more failure counted per username and per address, ``login_failed``
    audited with the username (or "(malformed)"). Once 5 for a username or 20 for an address: 429,
    ``login_locked`` audited once per lock, nothing counted. No session is ever opened."""
    gateway = console.gateway
    saved = await snapshot_with_ttl(gateway.redis)
    address_digest = hashlib.sha256(b"127.0.0.1").hexdigest()
    address = keys.login_failures("addr", address_digest)
    try:
        for username, password in attempts:
            assume(password != PASSWORD)
            name = username.strip().lower()
            user_key = keys.login_failures("user", hashlib.sha256(name.encode()).hexdigest())
            counts = [int(v or 0) for v in await gateway.redis.mget(user_key, address)]
            locked = counts[0] >= MAX_FAILURES_PER_USERNAME or counts[1] >= MAX_FAILURES_PER_ADDRESS
            lock_marker = keys.login_locked(*(("user", user_key.rsplit(":", 1)[1])
                                              if counts[0] >= MAX_FAILURES_PER_USERNAME else ("addr", address_digest)))
            first_knock = not await gateway.redis.exists(lock_marker)
            before, audit_before = await snapshot(gateway.redis), await audit_entries(gateway.redis)
            twin = "login-twin-0123456789"
            body = urlencode({"username": username, "password": password, "csrf": twin}).encode()
            response = await raw_http(gateway.port, raw_request("POST", "/agent/login", gateway.port, {
                "Content-Type": FORM, "Cookie": f"{LOGIN_COOKIE}={twin}"}, body))
            assert response.status == (429 if locked else 401), response.body[:200]
            assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")
            added = await new_audit_entries(gateway.redis, audit_before)
            after = await snapshot(gateway.redis)
            audited = name if USERNAME.fullmatch(name) else "(malformed)"  # never what was typed
            if locked and first_knock:
                assert added == [{"event": "login_locked", "agent": audited}]
                assert changed_keys(before, after) == {keys.AUDIT_STREAM.encode(), lock_marker.encode()}
                assert 0 < await gateway.redis.pttl(lock_marker) <= await gateway.redis.pttl(
                    user_key if counts[0] >= MAX_FAILURES_PER_USERNAME else address) + 1000
            elif locked:
                assert added == [] and changed_keys(before, after) == set()
            else:
                assert added == [{"event": "login_failed", "agent": audited}]
                assert changed_keys(before, after) == {keys.AUDIT_STREAM.encode(), user_key.encode(),
                                                       address.encode()}
                assert [int(v) for v in await gateway.redis.mget(user_key, address)] == [counts[0] + 1, counts[1] + 1]
                assert 0 < await gateway.redis.ttl(user_key) <= 15 * 60
            assert not [k async for k in gateway.redis.scan_iter(match="agent:session:*")
                        if k not in before], "a failed login opened a session"
            gateway.recorder.check()
    finally:
        await restore(gateway.redis, saved)
    await gateway.healthy()


# --- signing out -----------------------------------------------------------------------------------


@fuzz_settings(scale=0.5)
@given(pairs=form_pairs, token=st.sampled_from(["own", "missing", "forged", "other_session"]),
       origin_is_ours=st.booleans())
async def test_sign_out_needs_the_sessions_own_token(console: Console, pairs: list[tuple[str, str]], token: str,
                                                     origin_is_ours: bool) -> None:
    """POST /agent/logout with random fields: only the session's own token (from our origin) ends the session
    (303 to the login, its key deleted, ``logout`` audited); anything else is 403 and changes nothing."""
    gateway = console.gateway
    cookie = await sign_in(gateway, "bob")
    session = await gateway.services.agents.session(cookie, refresh=False)
    assert session is not None
    sent = {"own": session.csrf, "missing": None, "forged": "forged-0123456789", "other_session": console.csrf["sue"]}
    if sent[token] is not None:
        pairs = [("csrf", sent[token]), *pairs]
    ok = first(pairs, "csrf") == session.csrf and origin_is_ours
    session_key = keys.agent_session(hashlib.sha256(cookie.encode()).hexdigest()).encode()
    before, audit_before = await snapshot(gateway.redis), await audit_entries(gateway.redis)
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}", "Content-Type": FORM,
               "Origin": ours(gateway) if origin_is_ours else "https://evil.example"}
    response = await raw_http(gateway.port, raw_request("POST", "/agent/logout", gateway.port, headers,
                                                        urlencode(pairs).encode()))
    added = await new_audit_entries(gateway.redis, audit_before)
    changed = changed_keys(before, await snapshot(gateway.redis))
    if ok:
        assert (response.status, response.headers.get("location")) == (303, "/agent/login")
        assert added == [{"event": "logout", "agent": "bob"}]
        assert changed == {session_key, keys.AUDIT_STREAM.encode()} and not await gateway.redis.exists(session_key)
    else:
        assert response.status == 403
        assert (added, changed) == ([], set())
        await gateway.services.agents.logout(cookie, "bob")
    gateway.recorder.check()


# --- alice's own actions, with random forms -----------------------------------------------------------

REPLY_CODES = {"reply_length", "invalid", "twilio_refused", "not_sent", "sent", "already_sent"}
VERIFY_CODES = {"third_party", "verification_locked", "not_verified", "verified", "bot_unavailable"}
action_fields = st.one_of(
    st.tuples(st.sampled_from(["text", "nonce", "outcome", "note", "promise_date", "lift_holds", "agent", "csrf"]),
              st.one_of(text, st.sampled_from(["promise", "plan", "other", "wrong_number", "dispute_opened",
                                               "refused", "n" * 20, "2026-12-01", "2099-01-01", "1",
                                               "<script>alert(1)</script>", "x" * 460, "您好" * 40]))),
    st.tuples(text, text))


@fuzz_settings(scale=2)
@given(data=st.data())
async def test_the_holders_actions_with_random_forms_answer_a_defined_redirect(console: Console,
                                                                               data: st.DataObject) -> None:
    gateway, world = console.gateway, console.world
    action = data.draw(st.sampled_from(model.ACTIONS), label="action")
    pairs = [("csrf", console.csrf["alice"]), *data.draw(st.lists(action_fields, max_size=6), label="form")]
    oversized = data.draw(st.integers(0, 9), label="oversized") == 9
    if oversized:
        pairs.append(("note", "x" * (64 * 1024)))
    saved = await snapshot_with_ttl(gateway.redis)
    sms_before, audit_before = len(gateway.standin.messages), await audit_entries(gateway.redis)
    cookie = {"Cookie": f"{SESSION_COOKIE}={console.tokens['alice']}"}
    try:
        response = await raw_http(gateway.port, raw_request(
            "POST", f"/agent/c/{world.held}/{action}", gateway.port, {**cookie, "Content-Type": FORM},
            urlencode(pairs).encode()))
        await gateway.settle()
        gateway.recorder.check()
        added = await new_audit_entries(gateway.redis, audit_before)
        location = response.headers.get("location", "")
        code = dict(yarl.URL(location).query).get("m") if location else None
        event(f"{action} -> {response.status} {code}")
        if oversized:
            assert response.status == 413
        elif action == "reassign":  # alice is no supervisor
            assert response.status == 403 and added == [{"event": "denied", "agent": "alice",
                                                         "conversation": world.held}]
        else:
            assert response.status == 303, response.body[:300]
            allowed = {"claim": {("/agent/", "taken_by_someone_else")},
                       "reply": {(f"/agent/c/{world.held}", c) for c in REPLY_CODES},
                       "verify": {(f"/agent/c/{world.held}", c) for c in VERIFY_CODES},
                       "handback": {("/agent/", "handed_back"), (f"/agent/c/{world.held}", "bot_unavailable_kept"),
                                    ("/agent/", "no_longer_yours")},
                       "close": {(f"/agent/c/{world.held}", "invalid"), ("/agent/", "closed"),
                                 ("/agent/", "no_longer_yours")}}[action]
            assert (yarl.URL(location).path, code) in allowed, location
            # An SMS goes out only for a reply the page then calls sent.
            assert len(gateway.standin.messages) == sms_before + (code == "sent")
            # The page the redirect leads to shows its message to alice (the form's words escaped), and the
            # same link shows nothing to bob: it is signed for alice's session.
            page = await raw_http(gateway.port, raw_request("GET", location, gateway.port, cookie,
                                                            content_length=False))
            assert page.status in (200, 403), (location, page.status)
            assert b"<script>alert(1)</script>" not in page.body
            message = flash_text({k: v for k, v in yarl.URL(location).query.items() if k != "s"})
            if page.status == 200 and message:
                assert str(markupsafe.escape(message)).encode() in page.body
            if location.startswith("/agent/?"):
                other = await raw_http(gateway.port, raw_request(
                    "GET", location, gateway.port, {"Cookie": f"{SESSION_COOKIE}={console.tokens['bob']}"},
                    content_length=False))
                assert other.status == 200 and b'class="flash"' not in other.body
            gateway.recorder.check()
    finally:
        await restore(gateway.redis, saved)
    await gateway.healthy()


# --- an officer's visit forms ------------------------------------------------------------------------

VISIT_FIELDS = ("result", "staff_present", *ARRIVAL_CHECKS, "version", "text",
                *(f"{item}.{part}" for item in CHECKLIST for part in ("result", "note")),
                "contract.amount", "contract.term_months", "contract.annual_rate", "income_proof.stamp",
                "income_proof.signer", *(f"interview.{name}" for name in INTERVIEW), "interview.monthly_income",
                "interview.monthly_expenses", "interview.willingness", "interview.ability", "outcome.code",
                "outcome.amount", "outcome.date", "outcome.months", "outcome.next_step")
VISIT_VALUES = ("consented", "refused", "not_home", "yes", "no", "SH-0417", "SH-0522", "SH-0608", "0", "1", "2",
                "12000.00", "7.2", "1,000", "2026-12-01", "2099-13-40", "promise", "plan", "paid_on_spot",
                "follow_up_visit", "legal_review", "willing", "unable", "x" * 1001, "٣", "²", "1" * 4301,
                "<b>bold</b>")
VISIT_CODES = {"invalid", "visit_stale", "visit_arrived", "visit_saved", "visit_submitted", "visit_addendum"}


@fuzz_settings(scale=1)
@given(data=st.data())
async def test_an_officers_visit_forms_with_random_fields_answer_a_defined_redirect(console: Console,
                                                                                    data: st.DataObject) -> None:
    gateway, world = console.gateway, console.world
    steps = data.draw(st.lists(st.tuples(st.sampled_from(model.VISIT_ACTIONS), st.booleans(),
                                         st.lists(st.tuples(st.one_of(st.sampled_from(VISIT_FIELDS), text),
                                                            st.one_of(st.sampled_from(VISIT_VALUES), text)),
                                                  max_size=12)),
                                min_size=1, max_size=3), label="steps")
    cookie = {"Cookie": f"{SESSION_COOKIE}={console.tokens['wang']}"}
    saved = await snapshot_with_ttl(gateway.redis)
    try:
        for action, wants_json, fields in steps:
            visit = await gateway.services.field_visits.find(world.booking)
            version = str(visit.version if visit else 0)
            pairs = [("csrf", console.csrf["wang"]), *fields]
            if not any(k == "version" for k, _ in fields):
                pairs.append(("version", version))
            headers = {**cookie, "Content-Type": FORM}
            if wants_json:
                headers["Accept"] = "application/json"
            response = await raw_http(gateway.port, raw_request(
                "POST", f"/agent/visits/{world.booking}/{action}", gateway.port, headers, urlencode(pairs).encode()))
            gateway.recorder.check()
            event(f"{action} -> {response.status}")
            if action == "draft" and wants_json:
                assert response.status in (200, 400, 409), response.body[:300]
                answer = json.loads(response.body)
                assert set(answer) == ({"version", "saved_at"} if response.status == 200 else {"error"})
            else:
                assert response.status == 303, response.body[:300]
                location = yarl.URL(response.headers["location"])
                assert location.path == f"/agent/visits/{world.booking}"
                assert location.query.get("m") in VISIT_CODES, location
                page = await raw_http(gateway.port, raw_request("GET", str(location), gateway.port, cookie,
                                                                content_length=False))
                assert page.status == 200 and b"<b>bold</b>" not in page.body
                gateway.recorder.check()
    finally:
        await restore(gateway.redis, saved)
    await gateway.healthy()


# --- regressions: what the fuzzing found (until b2d8e08), pinned --------------------------------------


@pytest.mark.parametrize("content_type", [f"{FORM}; charset=undefined", f"{FORM}; charset=punycode",
                                          f"{FORM}; charset*=utf-8''utf-8", "multipart/form-data"],
                         ids=["undefined", "punycode", "rfc2231", "multipart-without-boundary"])
@pytest.mark.parametrize("path", ["/agent/login", "/agent", "/agent/static/console.js"])
async def test_an_unreadable_form_is_400_not_500_without_signing_in(gateway: Gateway, path: str,
                                                                    content_type: str) -> None:
    """Was 500: _csrf read the form unguarded (UnicodeError, TypeError, ValueError from aiohttp)."""
    before = await snapshot(gateway.redis)
    response = await raw_http(gateway.port, raw_request("POST", path, gateway.port, {"Content-Type": content_type},
                                                        b"csrf=a&username=b%FF"))
    assert response.status == 400
    assert await snapshot(gateway.redis) == before
    gateway.recorder.check()


async def test_a_locked_login_audits_no_typed_text(console: Console) -> None:
    """Was: login_locked audited the username as typed, so anyone could append 64 KiB of chosen text per request
    to the append-only audit stream once an address was locked."""
    gateway = console.gateway
    typed = "my password is hunter2 and my phone " + "9" * 40000
    for n in range(MAX_FAILURES_PER_ADDRESS + 1):
        twin = "login-twin-0123456789"
        body = urlencode({"username": f"guess{n}" if n < MAX_FAILURES_PER_ADDRESS else typed, "password": "wrong",
                          "csrf": twin}).encode()
        response = await raw_http(gateway.port, raw_request("POST", "/agent/login", gateway.port, {
            "Content-Type": FORM, "Cookie": f"{LOGIN_COOKIE}={twin}"}, body))
    assert response.status == 429
    assert (await audit_entries(gateway.redis))[-1] | {"at": ""} == {"event": "login_locked", "agent": "(malformed)",
                                                                    "at": ""}


@pytest.mark.parametrize("query", [{"m": "invalid", "detail": "Security check: call +1 555 0100 now"},
                                   {"m": "reassigned", "agent": "IT. Security check: call +1 555 0100 now"},
                                   {"m": "closed", "outcome": "Security check: call +1 555 0100 now"},
                                   {"m": "invalid", "detail": "Security check", "s": "0" * 32}],
                         ids=["invalid", "reassigned", "closed", "forged-signature"])
async def test_a_crafted_link_puts_no_words_in_the_consoles_notice(console: Console, query: dict[str, str]) -> None:
    """Was: flash.yml's known codes took their words from the query, so a link put any text on the page."""
    gateway = console.gateway
    page = await raw_http(gateway.port, raw_request("GET", "/agent/?" + urlencode(query), gateway.port,
                                                    {"Cookie": f"{SESSION_COOKIE}={console.tokens['bob']}"},
                                                    content_length=False))
    assert page.status == 200
    assert b"Security check" not in page.body and b'class="flash"' not in page.body


@pytest.mark.parametrize("value", ["²", "١", "1" * 4301], ids=["superscript", "arabic-indic", "4301-digits"])
async def test_a_whole_number_field_of_other_digits_is_refused_not_500(console: Console, value: str) -> None:
    """Was 500: bot/field/visits.py _whole took value.isdigit() and then int(value)."""
    gateway = console.gateway
    pairs = [("csrf", console.csrf["wang"]), ("version", "0"), ("outcome.months", value)]
    response = await raw_http(gateway.port, raw_request(
        "POST", f"/agent/visits/{console.world.booking}/draft", gateway.port,
        {"Cookie": f"{SESSION_COOKIE}={console.tokens['wang']}", "Content-Type": FORM}, urlencode(pairs).encode()))
    assert response.status == 303
    assert yarl.URL(response.headers["location"]).query.get("m") == "invalid"
    gateway.recorder.check()
