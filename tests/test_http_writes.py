"""bot/web/http_writes.py: an aiohttp message in one write, and streamed responses as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.web import http_writes

RELEASED = web.AppKey("released", asyncio.Event)
LIMIT = aiohttp.ClientTimeout(total=5)  # a message whose headers never left fails, not hangs


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    http_writes.install()
    (tmp_path / "page.txt").write_text("a file's words")
    released = asyncio.Event()

    async def whole(request: web.Request) -> web.Response:
        return web.Response(text="answer: " + await request.text())

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"X-Early": "yes"})
        await response.prepare(request)
        await released.wait()  # the headers are out before any body is written
        await response.write(b"later")
        return response

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo " + message.data)
        return ws

    app = web.Application()
    app[RELEASED] = released
    app.router.add_post("/whole", whole)
    app.router.add_get("/empty", empty)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/socket", socket)
    app.router.add_static("/files", tmp_path)
    async with TestServer(app) as test_server:
        yield test_server


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    written: list[bytes] = []
    original = http_writes._original_write
    monkeypatch.setattr(http_writes, "_original_write", lambda writer, chunk: written.append(chunk) or original(
        writer, chunk))
    return written


async def test_a_request_and_its_answer_each_go_in_one_write(server: TestServer, writes: list[bytes]) -> None:
    async with aiohttp.ClientSession(timeout=LIMIT) as http, \
            http.post(server.make_url("/whole"), data=b"question") as response:
        assert await response.text() == "answer: question"
    request, answer = writes
    assert request.startswith(b"POST /whole HTTP/1.1\r\n") and request.endswith(b"\r\n\r\nquestion")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nanswer: question")


async def test_messages_without_a_body_still_send_their_headers(server: TestServer, writes: list[bytes]) -> None:
    async with aiohttp.ClientSession(timeout=LIMIT) as http, http.get(server.make_url("/empty")) as response:
        assert response.status == 204
    assert [chunk.split(b"\r\n")[0] for chunk in writes] == [b"GET /empty HTTP/1.1", b"HTTP/1.1 204 No Content"]


async def test_a_client_expecting_continue_sends_its_headers_first(server: TestServer) -> None:
    async with aiohttp.ClientSession(timeout=LIMIT) as http, http.post(server.make_url("/whole"), data=b"later",
                                                          expect100=True) as response:
        assert await asyncio.wait_for(response.text(), 5) == "answer: later"


async def test_a_streamed_response_sends_its_headers_when_prepared(server: TestServer) -> None:
    async with aiohttp.ClientSession(timeout=LIMIT) as http:
        response = await asyncio.wait_for(http.get(server.make_url("/streamed")), 5)  # before any body
        assert response.headers["X-Early"] == "yes"
        server.app[RELEASED].set()
        assert await asyncio.wait_for(response.read(), 5) == b"later"
        response.release()


async def test_files_and_websockets_are_served_as_before(server: TestServer) -> None:
    async with aiohttp.ClientSession(timeout=LIMIT) as http:
        async with http.get(server.make_url("/files/page.txt")) as response:
            assert response.status == 200 and await response.text() == "a file's words"
        async with http.ws_connect(server.make_url("/socket")) as ws:
            await ws.send_str("hi")
            assert (await asyncio.wait_for(ws.receive(), 5)).data == "echo hi"


def test_the_installed_aiohttp_is_the_one_the_replacements_were_written_for() -> None:
    http_writes.install()
    http_writes.check()  # on the stock functions install() replaced


def test_another_aiohttp_or_changed_code_is_refused() -> None:
    with pytest.raises(http_writes.AiohttpChanged, match="aiohttp 3.10.0 is installed"):
        http_writes.check(version="3.10.0")
    changed = {(web.StreamResponse, "prepare"): "0000000000000000"}
    with pytest.raises(http_writes.AiohttpChanged, match="StreamResponse.prepare is not the code"):
        http_writes.check(changed)
