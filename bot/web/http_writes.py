"""An aiohttp request or response written to its socket in one piece, headers and body together.

aiohttp 3.9 (which Rasa 3.6 pins) writes a message's status line and headers as soon as they are
ready and its body in a second write: every request and response costs two send() calls, and the
peer wakes up for each part. On this machine a send to a local socket costs 50-100 µs of CPU, and a
turn makes three such messages in our processes (the webhook's answer, the gateway's call to Rasa,
Rasa's call to the action server). aiohttp 3.10 sends them together; this does the same for 3.9.

The headers wait, in the writer, for the body's first bytes, the end of the message or a drain
(a client expecting ``100 Continue`` drains before it waits). A server response that is streamed
rather than answered whole (a file sent by sendfile, a WebSocket, events) sends them as soon as it
is prepared, as before: its body may reach the socket without passing through the writer.

``install()`` is called where our processes start: the gateway (bot/edge/gateway.py) and Rasa
(bot/rasa_ext/patches.py).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import http_writer, web
from aiohttp.abc import AbstractStreamWriter

from bot.core.code_digest import code_digest

AIOHTTP_VERSIONS = ("3.9.5",)  # the digests below are 3.9.5's
# What install() replaces, with the digest of the code it was written against.
REPLACED: dict[tuple[type, str], str] = {
    (http_writer.StreamWriter, "write_headers"): "439c658c7634e56d",
    (http_writer.StreamWriter, "_write"): "d276d6c2ff4b8864",
    (http_writer.StreamWriter, "drain"): "3af3810fcd436c53",
    (web.StreamResponse, "_start"): "7e03ebd82e7f9f98",
}

_original_write = http_writer.StreamWriter._write
_original_drain = http_writer.StreamWriter.drain
_original_start = web.StreamResponse._start


async def _write_headers(self: http_writer.StreamWriter, status_line: str, headers: Any) -> None:
    if self._on_headers_sent is not None:
        await self._on_headers_sent(headers)
    self.__dict__["_headers_to_send"] = http_writer._serialize_headers(status_line, headers)


def _write(self: http_writer.StreamWriter, chunk: bytes) -> None:
    headers = self.__dict__.pop("_headers_to_send", None)
    _original_write(self, headers + chunk if headers else chunk)


def send_headers(writer: AbstractStreamWriter) -> None:
    """Write the headers still waiting in this writer, if any."""
    headers = writer.__dict__.pop("_headers_to_send", None)
    if headers:
        _original_write(writer, headers)  # type: ignore[arg-type]


async def _drain(self: http_writer.StreamWriter) -> None:
    send_headers(self)
    await _original_drain(self)


async def _start(self: web.StreamResponse, request: web.BaseRequest) -> AbstractStreamWriter:
    writer = await _original_start(self, request)
    if not isinstance(self, web.Response):  # streamed: its body may not pass through the writer
        send_headers(writer)
    return writer


class AiohttpChanged(RuntimeError):
    """The installed aiohttp is not the one these replacements were written against."""


def check(replaced: dict[tuple[type, str], str] = REPLACED, version: str = aiohttp.__version__) -> None:
    """Raises AiohttpChanged unless aiohttp's version and every replaced function's code are as expected."""
    if version not in AIOHTTP_VERSIONS:
        raise AiohttpChanged(f"aiohttp {version} is installed; bot/web/http_writes.py was written for "
                             f"{', '.join(AIOHTTP_VERSIONS)} (3.10 sends headers and body together itself)")
    for (owner, name), digest in replaced.items():
        stock = _STOCK.get((owner, name), owner.__dict__.get(name))
        if stock is None or code_digest(stock) != digest:
            raise AiohttpChanged(f"{owner.__qualname__}.{name} is not the code bot/web/http_writes.py replaces "
                                 f"(expected digest {digest}): review it against the new code first")


_STOCK = {(owner, name): owner.__dict__[name] for owner, name in REPLACED}


def install() -> None:
    """Check aiohttp, then make every aiohttp writer in this process send headers with the body (idempotent)."""
    check()
    http_writer.StreamWriter.write_headers = _write_headers  # type: ignore[method-assign]
    http_writer.StreamWriter._write = _write  # type: ignore[method-assign]
    http_writer.StreamWriter.drain = _drain  # type: ignore[method-assign]
    web.StreamResponse._start = _start  # type: ignore[method-assign]
