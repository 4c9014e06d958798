"""What the fuzz tests share: Redis snapshots, a raw HTTP client, Twilio signatures, the crash recorder.

Kept out of conftest.py so that the test modules import it like any module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import settings
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from bot.core import keys
from bot.core.settings import Settings
from bot.edge.appkeys import PENDING
from bot.ops import twilio_standin
from bot.services import Services
from tests.conftest import FakeRasa

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'

# --- Redis --------------------------------------------------------------------------------------

Snapshot = dict[bytes, Any]


async def snapshot(redis: Any) -> Snapshot:
    """Every key and its value (and type, not the TTL): equal snapshots mean nothing was written.

    A hash is compared by its fields, sorted, not by its DUMP: reading a hash that Redis is still rehashing
    moves the rehash on, and the DUMP's field order with it (a hash of more than 4 fields, like an agent's
    account, grows its table and rehashes a step at each access), though nothing was written.
    """
    names = [key async for key in redis.scan_iter(count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in names:
            pipe.type(key)
            pipe.dump(key)
        replies = await pipe.execute()
    kinds, dumps = replies[0::2], replies[1::2]
    hashes = [key for key, kind in zip(names, kinds, strict=True) if kind == b"hash"]
    async with redis.pipeline(transaction=False) as pipe:
        for key in hashes:
            pipe.hgetall(key)
        fields = dict(zip(hashes, await pipe.execute(), strict=True))
    # None: the key expired between SCAN and DUMP.
    return {key: tuple(sorted(fields[key].items())) if key in fields else dumped
            for key, dumped in zip(names, dumps, strict=True) if dumped is not None}


async def snapshot_with_ttl(redis: Any) -> dict[bytes, tuple[bytes, int]]:
    """Every key's DUMP and remaining milliseconds (0: no expiry), for ``restore``."""
    names = [key async for key in redis.scan_iter(count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in names:
            pipe.dump(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    return {key: (replies[2 * i], max(int(replies[2 * i + 1]), 0)) for i, key in enumerate(names)
            if replies[2 * i] is not None}


async def restore(redis: Any, saved: dict[bytes, tuple[bytes, int]]) -> None:
    """Put the database back as ``snapshot_with_ttl`` found it (the fuzz tests' own database only)."""
    await redis.flushdb()
    async with redis.pipeline(transaction=True) as tx:
        for key, (dumped, ttl) in saved.items():
            tx.restore(key, ttl, dumped)
        await tx.execute()


def changed_keys(before: Snapshot, after: Snapshot) -> set[bytes]:
    """Keys added, removed or changed between two snapshots."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


async def audit_entries(redis: Any) -> list[dict[str, str]]:
    entries = await redis.xrange(keys.AUDIT_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def new_audit_entries(redis: Any, before: list[dict[str, str]]) -> list[dict[str, str]]:
    """The audit entries appended since ``before`` (which must still be the stream's start), without "at"."""
    after = await audit_entries(redis)
    assert after[:len(before)] == before, "the append-only audit stream lost or changed entries"
    return [{k: v for k, v in e.items() if k != "at"} for e in after[len(before):]]


# --- Twilio ----------------------------------------------------------------------------------------


def sign(settings: Settings, path_qs: str, form: Any, base: str | None = None) -> str:
    """X-Twilio-Signature for ``form`` posted to ``path_qs`` (on ``base``, the public base URL by default)."""
    url = (settings.public_base_url if base is None else base) + path_qs
    fields = MultiDict(form) if isinstance(form, list) else form
    return str(RequestValidator(settings.twilio_auth_token).compute_signature(url, fields))


def server_form(body: bytes, charset: str = "utf-8") -> MultiDict[str]:
    """The form aiohttp's ``request.post()`` makes of an urlencoded body (as the gateway sees it)."""
    return MultiDict(parse_qsl(body.rstrip().decode(charset), keep_blank_values=True, encoding=charset))


def signature_view(form: Any) -> dict[str, set[str]]:
    """What Twilio's signature covers: each name with its set of values (order and repeats do not count)."""
    pairs = form.items() if isinstance(form, MultiDict) else list(form.items()) if isinstance(form, dict) else form
    view: dict[str, set[str]] = {}
    for name, value in pairs:
        view.setdefault(name, set()).add(value)
    return view


# --- the raw HTTP client --------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int | None  # None: the server closed without answering
    headers: dict[str, str]  # lower-case names
    body: bytes


async def raw_http(port: int, request: bytes, half_close: bool = False, timeout: float = 10) -> RawResponse:
    """Send bytes as they are (no client-side normalising of paths, headers or lengths); read the first answer.

    Args:
        half_close: shut our side after sending, as a client that died mid-body would.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(_read_response(reader, head=request.startswith(b"HEAD ")), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader, head: bool) -> RawResponse:
    """The status, headers and body of one HTTP/1.1 response; status None if the server closed first.

    Args:
        head: the answer to a HEAD request, which has headers only.
    """
    try:
        raw_head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return RawResponse(None, {}, b"")
    lines = raw_head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:  # a repeated header (Set-Cookie) keeps every value, one per line
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = headers[name] + "\n" + value.strip() if name in headers else value.strip()
    status = int(lines[0].split(" ")[1])
    if head or status in (204, 304) or status < 200:
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return RawResponse(status, headers, body)


def raw_request(method: str, target: str, port: int, headers: dict[str, str] | None = None,
                body: bytes = b"", content_length: bool = True) -> bytes:
    """An HTTP/1.1 request as bytes, closing the connection after its answer."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- what the server did -------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    raw_path: str
    path: str  # as the middlewares and the router see it (percent-decoded)
    route: str | None  # the route's canonical path, or None when the router found none (404/405)


@dataclass
class Recorder:
    """An outermost middleware: what each request looked like to the server, and every crash's traceback."""

    seen: list[Seen] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        info = request.match_info
        route = None if info.http_exception is not None else info.route.resource.canonical if (
            info.route.resource is not None) else None
        self.seen.append(Seen(request.method, request.raw_path, request.path, route))
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            self.crashes.append(f"{request.method} {request.raw_path!r}\n{traceback.format_exc()}")
            raise

    def install(self, app: web.Application) -> None:
        app.middlewares.insert(0, self.middleware)

    def last(self) -> Seen:
        assert self.seen, "the request never reached the application"
        return self.seen[-1]

    def check(self) -> None:
        """Fail with the server's traceback if any request since the last check crashed (answered 500)."""
        crashes, self.crashes = self.crashes, []
        self.seen.clear()
        assert not crashes, "the server crashed:\n" + "\n".join(crashes)


# --- the gateway under test (started by the ``gateway`` fixture in conftest.py) ---------------------


@dataclass(repr=False)
class Gateway:
    """The running gateway and what stands behind it."""

    services: Services
    settings: Settings
    client: TestClient
    rasa: FakeRasa
    standin: twilio_standin.StandIn
    recorder: Recorder

    def __repr__(self) -> str:  # Hypothesis prints the fixture with every falsifying example
        return f"Gateway(port={self.port})"

    @property
    def redis(self) -> Any:
        return self.services.redis

    @property
    def port(self) -> int:
        port = self.client.server.port
        assert port is not None
        return port

    async def settle(self) -> None:
        """Wait for what the gateway does in the background (the SMS a call sends) to be done."""
        pending = self.client.server.app[PENDING]
        while pending:
            await asyncio.gather(*list(pending), return_exceptions=True)

    async def healthy(self) -> None:
        """/healthz still answers, and answers that everything is up."""
        response = await self.client.get("/healthz")
        assert response.status == 200, await response.text()
        assert await response.json() == {"redis": "ok", "rasa": "ok", "actions": "ok"}


# --- Hypothesis ------------------------------------------------------------------------------------


def fuzz(scale: float = 1.0) -> settings:
    """The profile HYPOTHESIS_PROFILE names (tests/fuzz/conftest.py), with ``scale`` times its examples.

    Applied per test, not loaded globally, so that the other tests keep their own Hypothesis settings.
    """
    profile = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    return settings(profile, max_examples=max(3, round(profile.max_examples * scale)))
