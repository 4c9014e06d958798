"""Shared fixtures: a real redis-server per test session, test settings, the sample ledger."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import redis as sync_redis
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet
from rasa.shared.core.events import Event
from rasa.shared.utils.schemas.events import EVENTS_SCHEMA

from bot import services as services_module
from bot.core.crypto import MaskingFilter
from bot.core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
# Everything a test run logs, at every level, through the same masking filter as the processes;
# `make test` then scans it (and the integration stack's logs) for personal data: scripts/scan_logs.py.
TEST_LOGS = ROOT / "results" / "test-logs"


def _system_records(record: logging.LogRecord) -> bool:
    """The system's own records at every level, libraries' from INFO (as the processes run them);
    not the test tools' (Selenium logs what the test types)."""
    top = record.name.split(".")[0]
    if top in ("selenium", "hypothesis"):
        return False
    return top in ("bot", "actions", "tests") or record.levelno >= logging.INFO


@pytest.fixture(scope="session", autouse=True)
def _log_everything() -> Iterator[None]:
    TEST_LOGS.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(TEST_LOGS / f"pytest-{os.getpid()}.log", mode="w", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_system_records)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    handler.close()


@pytest.fixture(autouse=True)
def _log_everything_again() -> None:
    """Loading a Rasa model sets the root logger to WARNING: every later test's records went unlogged
    (and unscanned) after the first test that loaded one."""
    logging.getLogger().setLevel(logging.DEBUG)


def daytime_zone(now: datetime | None = None) -> str:
    """An Etc/GMT zone where it is now between 10:00 and 17:59 (Etc/GMT-8 is UTC+8)."""
    hour = (now or datetime.now(ZoneInfo("UTC"))).hour
    offset = next(o for o in range(-12, 15) if 10 <= (hour + o) % 24 <= 17)
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A fresh redis-server on a free port with AOF on, its URL while it runs; stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make setup` installs it")
    port = free_port()
    # `make test-clock` moves the suite's clock with libfaketime, which redis-server (jemalloc) cannot
    # run under; it keeps the real clock, as a bank's Redis would beside a bot whose clock is off.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL, env=env)
    client = sync_redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except sync_redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; `make test` installs it")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def make_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """A complete, valid environment for the bot's processes in tests."""
    env = {
        "REDIS_URL": redis_url,
        "TWILIO_AUTH_TOKEN": "test-auth-token-0123456789abcdef",
        "DATA_KEYS": Fernet.generate_key().decode(),
        "HMAC_SECRET": "test-hmac-secret-that-is-long-enough-0123",
        "RASA_TOKEN": "test-rasa-token",
        "PUBLIC_BASE_URL": "https://bot.example-bank.test",
        "BANK_PHONE": "95588",
        "BOT_ENV_FILE": "/nonexistent/.env",  # never the developer's .env
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def test_env(redis_url: str) -> dict[str, str]:
    return make_env(redis_url)


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return load_settings(test_env)


@pytest.fixture
async def services(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[services_module.Services]:
    """Process services on the test Redis, emptied before each test, with the sample ledger."""
    svc = services_module.Services(settings)
    await svc.redis.flushdb()
    await svc.ledger.import_files(SAMPLES / "accounts.csv", SAMPLES / "installments.csv", date(2026, 11, 29))
    monkeypatch.setattr(services_module, "_services", svc)
    yield svc
    await svc.close()


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's .env or shell settings by accident."""
    for name in ("REDIS_URL", "TWILIO_AUTH_TOKEN", "DATA_KEYS", "HMAC_SECRET", "RASA_TOKEN"):
        if name in os.environ:
            monkeypatch.delenv(name)


class FakeRasa:
    """Answers the REST channel like Rasa does, and remembers every request."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.replies: list[str] = ["Hello from the bot."]
        self.up = True
        self.garbage: bytes | None = None
        self.customs: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}  # appended through the tracker API
        self.delay = 0.0  # seconds each turn takes
        self.refused: set[str] = set()  # messages answered 500, as if Rasa failed on them
        self.running = self.most_at_once = 0
        # Called with what the tracker API appended, to stand in for the tracker store's archive.
        self.archive: Callable[[str, list[dict[str, Any]]], Awaitable[None]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/conversations/{conversation}/tracker/events", self.tracker_events)
        app.router.add_post("/webhooks/gateway/webhook", self.webhook)
        app.router.add_get("/status", self.status)
        app.router.add_get("/health", self.status)
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=500)
        if self.garbage is not None:
            return web.Response(body=self.garbage, content_type="application/json")
        payload = await request.json()
        if payload["message"] in self.refused:
            return web.Response(status=503)
        self.received.append(payload)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if payload["message"] == "/session_start":  # the real one would introduce itself here
            return web.json_response([])
        return web.json_response([{"recipient_id": payload["sender"], "text": t} for t in self.replies]
                                 + [{"recipient_id": payload["sender"], "custom": c} for c in self.customs])

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_file": "models/x.tar.gz"}, status=200 if self.up else 503)

    async def tracker_events(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=500)
        conversation, events = request.match_info["conversation"], await request.json()
        try:
            jsonschema.validate(events, EVENTS_SCHEMA)  # what Rasa's API checks first
        except jsonschema.ValidationError as error:
            return web.json_response({"message": str(error)}, status=400)
        for event in events:
            Event.from_parameters(event)  # then builds; a malformed event is a 500 there too
        self.events.setdefault(conversation, []).extend(events)
        if self.archive is not None:  # Rasa stamps the events it is given
            await self.archive(conversation, [{"timestamp": time.time(), **e} for e in events])
        return web.json_response({"sender_id": conversation})


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[FakeRasa, str]]:
    fake = FakeRasa()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()
