"""The fuzz suite's Hypothesis profiles and its gateway fixture.

Profiles, chosen by the HYPOTHESIS_PROFILE environment variable (each test applies the profile itself,
through ``tests.fuzz.helpers.fuzz``, so that the rest of the suite keeps its own Hypothesis settings):

- ``ci`` (the default): few examples, derandomized, so that a CI run is reproducible and the whole
  tests/fuzz directory takes about a minute on two cores;
- ``long``: thousands of examples per test from a fresh random seed each run (``make fuzz``); a failure
  prints the seed and a ``@reproduce_failure`` blob to replay it.

The gateway runs in-process, as in tests/test_gateway.py and tests/test_console.py, on the session's
Redis (emptied per test by the ``services`` fixture), with FakeRasa behind it, the Twilio stand-in for any
SMS it sends, no background visit reminders (so that nothing writes to Redis but the requests), cheap
argon2 parameters, and an outermost middleware that records each request's path and every crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings

from bot.domain import agents
from bot.edge import gateway as gateway_module
from bot.edge.gateway import init_app
from bot.ops import twilio_standin
from bot.services import Services
from tests.conftest import FakeRasa
from tests.fuzz.helpers import Gateway, Recorder

# One fixture serves every example of a test: the examples share the app (starting one per example
# would cost more than the example), and each example checks for itself that it wrote nothing it
# should not have. Hence function_scoped_fixture.
_COMMON: dict[str, Any] = {
    "deadline": None,  # a request's time depends on the machine's load, not on the input
    "suppress_health_check": [HealthCheck.function_scoped_fixture],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=30, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=2000, **_COMMON)


def _note_first_sweep(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event | None:
    """An event set when the gateway's first background retention sweep is done (None: no such sweep)."""
    retention = getattr(gateway_module, "retention", None)
    original = getattr(retention, "sweep", None)
    if original is None:
        return None
    done = asyncio.Event()

    async def sweep(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            done.set()

    monkeypatch.setattr(retention, "sweep", sweep)
    return done


@pytest.fixture
async def gateway(services: Services, rasa: tuple[FakeRasa, str],
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.setattr(agents, "PasswordHasher", functools.partial(PasswordHasher, time_cost=1, memory_cost=1024))
    services.__dict__.pop("agents", None)
    fake, rasa_url = rasa
    standin_server = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                        services.settings.twilio_auth_token))
    await standin_server.start_server()
    gateway_settings = dataclasses.replace(
        services.settings, rasa_url=rasa_url, action_url=rasa_url, visit_reminder_minutes=0,
        twilio_api_base_url=str(standin_server.make_url("")).rstrip("/"))
    swept = _note_first_sweep(monkeypatch)
    app = init_app(gateway_settings)
    recorder = Recorder()
    recorder.install(app)
    try:
        async with TestClient(TestServer(app)) as client:
            if swept is not None:  # the retention sweep the gateway starts with is over before any snapshot
                await asyncio.wait_for(swept.wait(), 30)
            yield Gateway(services, gateway_settings, client, fake, standin_server.app[twilio_standin.STATE],
                          recorder)
    finally:
        await standin_server.close()
