"""What the console under /agent/ must answer, from bot/console/desk.py's middlewares and handlers.

The middlewares run in this order (console.add_to): security headers, then sign-in (``_signed_in``),
then CSRF (``_csrf``), then aiohttp's router and the handler:

- sign-in: "/agent", "/agent/login*" and "/agent/static/*" are open. Anything else needs a live session:
  without one, a GET of a page is 303 to /agent/login, and everything else (a POST, a HEAD, a background
  part: a path ending in /rows, /transcript, /ws or /presence) is 401. With one, the role decides: field staff open
  only /agent/visits* and /agent/logout (their /agent/ is 303 to /agent/visits), agents everything but
  /agent/visits*, supervisors everything; a refusal is 403 and audits a ``denied`` event naming the
  path's first segment.
- CSRF: a GET passes (but /agent/ws only from our origin). Any other method (HEAD too) must come from
  our origin, if it names one (else 403); then its form is read (a body aiohttp cannot decode: 400);
  then it must carry the CSRF token in its form: the session's, or before sign-in the login cookie's
  twin (else 403).
- a redirect carrying a message (``?m=``) for a signed-in session gets ``&s=``, its signature.
- then the router: 404 for no route, 405 for a route without that method; then the handler's own answer.

This module classifies a (decoded) path and computes the status, the redirect and the audit entries;
the tests feed it the path as the server saw it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.console import desk as console

STATIC = Path(console.__file__).resolve().parent / "static"
CONVERSATION = r"c_[0-9a-f]{32}"
BOOKING = r"v[0-9a-f]{16}"
ACTIONS = ("claim", "reply", "verify", "handback", "close", "reassign")
VISIT_ACTIONS = ("arrival", "draft", "submit", "addendum")

# Every route of the console and the field console (their add_to functions): method, path pattern, name.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/agent", "to_queue"),
    ("GET", "/agent/login", "login_page"),
    ("POST", "/agent/login", "login"),
    ("POST", "/agent/logout", "logout"),
    ("GET", "/agent/", "queue"),
    ("GET", "/agent/queue/rows", "rows"),
    ("GET", "/agent/ws", "ws"),
    ("GET", f"/agent/c/(?P<conversation>{CONVERSATION})", "conversation"),
    ("GET", f"/agent/c/(?P<conversation>{CONVERSATION})/transcript", "transcript"),
    *(("POST", f"/agent/c/(?P<conversation>{CONVERSATION})/{a}", a) for a in ACTIONS),
    ("GET", "/agent/visits", "visits"),
    ("GET", f"/agent/visits/(?P<booking>{BOOKING})", "visit"),
    *(("POST", f"/agent/visits/(?P<booking>{BOOKING})/{a}", a) for a in VISIT_ACTIONS),
    ("GET", f"/agent/visits/(?P<booking>{BOOKING})/report\\.(zh|en)\\.(pdf|html)", "report"),
    ("POST", f"/agent/c/(?P<conversation>{CONVERSATION})/presence", "presence"),
    ("GET", f"/agent/c/(?P<conversation>{CONVERSATION})/transcript\\.pdf", "export"),
    ("GET", "/agent/search", "search_page"),
    ("POST", "/agent/search", "search"),
    ("GET", "/agent/sla", "sla"),
    ("POST", "/agent/shift", "shift"),
)


# The same routes as aiohttp names them (and the webhooks'), for the test that the model misses none.
CANONICAL_ROUTES = {
    ("POST", "/twilio/sms"), ("POST", "/twilio/status"), ("POST", "/twilio/voice"), ("GET", "/healthz"),
    ("GET", "/agent"), ("GET", "/agent/login"), ("POST", "/agent/login"), ("POST", "/agent/logout"),
    ("GET", "/agent/"), ("GET", "/agent/queue/rows"), ("GET", "/agent/ws"), ("GET", "/agent/c/{conversation}"),
    ("GET", "/agent/c/{conversation}/transcript"), *(("POST", f"/agent/c/{{conversation}}/{a}") for a in ACTIONS),
    ("GET", "/agent/static"), ("GET", "/agent/visits"), ("GET", "/agent/visits/{booking}"),
    *(("POST", f"/agent/visits/{{booking}}/{a}") for a in VISIT_ACTIONS),
    ("GET", "/agent/visits/{booking}/report.{language}.{kind}"), ("POST", "/agent/c/{conversation}/presence"),
    ("GET", "/agent/c/{conversation}/transcript.pdf"), ("GET", "/agent/search"), ("POST", "/agent/search"),
    ("GET", "/agent/sla"), ("POST", "/agent/shift"),
}


@dataclass(frozen=True)
class Route:
    """What the router makes of a method and path: the route's name and ids, or why there is none."""

    name: str | None  # None: no route for this path (404) or not for this method (405)
    status: int | None = None  # 404 or 405 when name is None
    conversation: str = ""
    booking: str = ""


def route(method: str, raw: str) -> Route:
    """aiohttp's router, which matches the raw (still %-encoded) path, unlike the middlewares, which read
    the decoded one. (No route pattern admits a "%", so a path a route matches reads the same decoded:
    the middlewares judge the path the handler serves.)"""
    if raw == "/agent/static" or raw.startswith("/agent/static/"):
        return Route("static") if method in ("GET", "HEAD") else Route(None, 405)
    methods_for_path = []
    for route_method, pattern, name in ROUTES:
        found = re.fullmatch(pattern, raw)
        if found:
            methods_for_path.append(route_method)
            # aiohttp adds HEAD to every GET route.
            if method == route_method or (method == "HEAD" and route_method == "GET"):
                ids = found.groupdict()
                return Route(name, None, ids.get("conversation") or "", ids.get("booking") or "")
    return Route(None, 405 if methods_for_path else 404)


def is_console(path: str) -> bool:
    """The middlewares act on these paths only; any other path is the router's alone."""
    return path == "/agent" or path.startswith("/agent/")


def is_open(path: str) -> bool:
    return path == "/agent" or path.startswith(("/agent/login", "/agent/static/"))


def is_background(path: str) -> bool:
    return path.endswith(("/rows", "/transcript", "/ws", "/presence"))


def static_status(path: str) -> int:
    """aiohttp's static handler: 200 only for a file inside bot/console/static; 403 for an absolute or directory one."""
    rel = path[len("/agent/static/"):]  # the rest of the decoded path
    try:
        if Path(rel).anchor:
            return 403
        target = STATIC.joinpath(rel).resolve()
        target.relative_to(STATIC)
    except ValueError:  # outside the folder, or a NUL in the name
        return 404
    if target.is_dir():
        return 403
    return 200 if target.is_file() else 404


@dataclass
class Expected:
    status: int
    location: str | None = None  # for a 30x: the Location, or its start when it ends with "?"
    audit: list[dict[str, str]] = field(default_factory=list)
    note: str = ""

    def matches_location(self, location: str | None) -> bool:
        """The Location is the expected one (a prefix, when it ends with "?"), a message's with its signature."""
        if self.location is None:
            return True
        if location is None:
            return False
        if self.location.endswith("?"):
            return location.startswith(self.location)
        return location == self.location or bool(re.fullmatch(re.escape(self.location) + "&s=[0-9a-f]{32}", location))


def without_session(method: str, path: str, raw: str, origin_ok: bool, csrf_twin: bool,
                    unreadable: bool = False) -> Expected:
    """No live session (none, forged, expired or signed out). ``path`` is decoded, ``raw`` as sent.
    ``csrf_twin``: the form's csrf equals the login cookie's, both non-empty. ``unreadable``: a body
    aiohttp reads as a form but cannot decode. POSTs to /agent/login that pass CSRF are logins
    (another test)."""
    if not is_console(path):
        return _unrouted(route(method, raw))
    if not is_open(path):
        if method == "GET" and not is_background(path):
            return Expected(303, "/agent/login")
        return Expected(401)
    found = route(method, raw)
    if method == "GET":
        if found.name is None:
            return Expected(found.status or 404)
        if found.name == "to_queue":
            return Expected(301, "/agent/")
        if found.name == "static":
            return Expected(static_status(path))
        return Expected(200)  # the login page
    if not origin_ok:
        return Expected(403, note="origin")
    if unreadable:
        return Expected(400, note="unreadable form")
    if not csrf_twin:
        return Expected(403, note="csrf")
    assert found.name != "login", "logins are fuzzed by their own test"
    return Expected(found.status or 405)


@dataclass(frozen=True)
class Who:
    """A signed-in user, as the model needs them."""

    username: str
    role: str
    staff_id: str = ""

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"

    @property
    def field(self) -> bool:
        return self.role == "field"


@dataclass(frozen=True)
class World:
    """The conversations and visit the fixture set up, and who may do what with them."""

    held: str  # a conversation alice holds
    held_account: str
    waiting: str  # a conversation waiting in the queue
    waiting_account: str
    booking: str  # a visit booked for two field officers
    booking_account: str
    booking_staff: frozenset[str]
    usernames: frozenset[str]


def gate(who: Who, method: str, path: str, origin_ok: bool, csrf_ok: bool, csrf_twin: bool,
         unreadable: bool = False) -> Expected | None:
    """The sign-in and CSRF middlewares' answer for a live session; None when the request goes on to the router.

    On the open paths the session is not even read: the CSRF token must be the login cookie's twin."""
    if not is_console(path):
        return None
    if is_open(path):
        if method == "GET":
            return None
        if not origin_ok:
            return Expected(403, note="origin")
        if unreadable:
            return Expected(400, note="unreadable form")
        return None if csrf_twin else Expected(403, note="csrf")
    visits = path == "/agent/visits" or path.startswith("/agent/visits/")
    allowed = (visits or path == "/agent/logout") if who.field else (who.supervisor or not visits)
    if not allowed:
        if who.field and path == "/agent/":
            return Expected(303, "/agent/visits")
        return Expected(403, audit=[denied(who, path=path.split("/")[2])], note="role")
    if method == "GET":
        if path == "/agent/ws" and not origin_ok:
            return Expected(403, note="ws origin")
    elif not origin_ok:
        return Expected(403, note="origin")
    elif unreadable:
        return Expected(400, note="unreadable form")
    elif not csrf_ok:
        return Expected(403, note="csrf")
    return None


def with_session(who: Who, method: str, path: str, raw: str, query: dict[str, str], form: dict[str, str],
                 origin_ok: bool, csrf_ok: bool, csrf_twin: bool, world: World, unreadable: bool = False) -> Expected:
    """A live session's request (the model covers what the role test sends: no logout, no login, no action
    that would change anything but the audit stream)."""
    if not is_console(path) or is_open(path):  # the open paths answer alike with or without a session
        return without_session(method, path, raw, origin_ok, csrf_twin, unreadable)
    refused = gate(who, method, path, origin_ok, csrf_ok, csrf_twin, unreadable)
    if refused is not None:
        return refused
    found = route(method, raw)
    if found.name is None:
        return Expected(found.status or 404)
    return _handler(who, found, query, form, world)


def _unrouted(found: Route) -> Expected:
    """Outside the console: the router alone (no console route is outside it)."""
    assert found.name is None, found
    return Expected(found.status or 404)


def denied(who: Who, **fields: str) -> dict[str, str]:
    return {"event": "denied", "agent": who.username, **fields}


def _handler(who: Who, found: Route, query: dict[str, str], form: dict[str, str], world: World) -> Expected:
    name, cid, bid = found.name, found.conversation, found.booking
    accounts = {world.held: world.held_account, world.waiting: world.waiting_account}
    holders = {world.held: "alice"}
    if name == "queue":
        return Expected(200, audit=[{"event": "view_queue", "agent": who.username}])
    if name == "rows":
        return Expected(200)
    if name == "ws":  # a plain GET, not a WebSocket handshake
        return Expected(400)
    if name in ("conversation", "transcript"):
        if not who.supervisor and holders.get(cid) != who.username:
            return Expected(403, audit=[denied(who, conversation=cid)])
        if cid not in accounts:
            return Expected(404)
        event = "view_conversation" if name == "conversation" else "view_transcript"
        return Expected(200, audit=[{"event": event, "agent": who.username, "conversation": cid,
                                     "account_id": accounts[cid]}])
    if name in ("presence", "export"):
        if not who.supervisor and holders.get(cid) != who.username:
            # A page's heartbeat after the conversation changed hands is refused without an audit entry.
            return Expected(403, audit=[] if name == "presence" else [denied(who, conversation=cid)])
        if cid not in accounts:
            return Expected(404)
        if name == "presence":
            raise AssertionError("a viewer's heartbeat writes their presence: not in this model")
        if not who.supervisor:
            return Expected(403, audit=[denied(who, conversation=cid)])
        return Expected(200, audit=[{"event": "export_transcript", "agent": who.username, "conversation": cid,
                                     "account_id": accounts[cid]}])
    if name == "search_page":
        return Expected(200)
    if name == "search":  # what kind of search and what it found depend on the form: any will do
        return Expected(200, audit=[{"event": "search", "agent": who.username, "kind": "*", "found": "*"}])
    if name == "sla":
        if not who.supervisor:
            return Expected(403, audit=[denied(who, path="sla")])
        return Expected(200, audit=[{"event": "view_sla", "agent": who.username}])
    if name == "shift":
        raise AssertionError("starting or ending a shift writes it: not in this model")
    if name == "claim":
        assert cid != world.waiting, "claiming a waiting conversation changes it: not in this model"
        return Expected(303, "/agent/?m=taken_by_someone_else")
    if name in ("reply", "verify", "handback", "close"):
        assert holders.get(cid) != who.username
        return Expected(403, audit=[denied(who, conversation=cid)])
    if name == "reassign":
        if not who.supervisor:
            return Expected(403, audit=[denied(who, conversation=cid)])
        assert form.get("agent", "") not in world.usernames
        return Expected(303, "/agent/?m=no_such_agent")
    if name == "visits":
        day = query.get("day", "")
        if day and not _iso_day(day):
            return Expected(400)
        # Without a day, the officer's today in their region's zone: any day will do ("*").
        return Expected(200, audit=[{"event": "view_visits", "agent": who.username, "day": day or "*"}])
    if name in ("visit", "report", *VISIT_ACTIONS):
        return _visit(who, name, bid, form, world)
    if name in ("to_queue", "login_page", "login", "logout", "static"):
        raise AssertionError(f"{name} is not in the role test's model")
    raise AssertionError(f"unknown route {name}")


def _visit(who: Who, name: str, bid: str, form: dict[str, str], world: World) -> Expected:
    if bid != world.booking:
        return Expected(404)
    write = name in ("arrival", "draft", "submit")
    if who.staff_id not in world.booking_staff and not (who.supervisor and not write):
        return Expected(403, audit=[denied(who, booking=bid)])
    assert not (write and who.staff_id in world.booking_staff), "a staff member's writes are another test's"
    if name == "visit":
        return Expected(200, audit=[{"event": "view_visit", "agent": who.username, "booking": bid,
                                     "account_id": world.booking_account}])
    if name == "report":
        return Expected(404)  # the visit is not submitted
    # An addendum to a visit that is not submitted: refused, back to the visit with the reason.
    assert name == "addendum"
    return Expected(303, f"/agent/visits/{bid}?")


def _iso_day(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
