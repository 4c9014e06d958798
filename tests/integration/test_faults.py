"""Faults on a whole system of its own: Rasa, the action server and Redis killed and restarted.

The system (bot/ops/supervisor.py) runs with its own redis-server (AOF on), so killing it touches no
other test. What is promised:

- Rasa or the action server down or killed mid-conversation: the gateway answers Twilio 200 with no
  message and keeps the borrower's message (bot/domain/turns.py); once Rasa answers again, the kept messages
  are taken in arrival order and their replies texted, each once.
- Redis killed and restarted: what was written before is all there (AOF).
- Redis unreachable: the gateway answers 503 and the borrower does not start over afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bot.core.crypto import pseudonym
from bot.core.settings import Settings, load_settings
from bot.ops.chat import messages_in, signed_sms
from bot.ops.supervisor import Options, Stack, ready, start_all
from bot.services import Services
from tests.conftest import TEST_LOGS, free_port, make_env
from tests.integration.conftest import LEDGER_DAY, Borrower, _write_ledger

pytestmark = pytest.mark.integration


class System:
    """The running system and a borrower's phone."""

    def __init__(self, stack: Stack, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.stack, self.settings, self.http = stack, settings, http

    async def sms(self, borrower: Borrower, body: str) -> tuple[int, list[str]]:
        form, signature = signed_sms(self.settings, borrower.phone, body)
        async with self.http.post(f"http://127.0.0.1:{self.settings.gateway_port}/twilio/sms", data=form,
                                  headers={"X-Twilio-Signature": signature}) as response:
            return response.status, messages_in(await response.text()) if response.status == 200 else []

    async def texted(self, borrower: Borrower) -> list[str]:
        async with self.http.get(self.settings.twilio_api_base_url + "/standin/messages") as response:
            return [m["body"] for m in await response.json() if m["to"] == borrower.phone]

    async def texted_until(self, borrower: Borrower, words: str, seconds: float = 60) -> list[str]:
        """The replies texted to the borrower, once one of them holds ``words`` and no more came for a
        second (a replayed turn's replies go out one after another: the test must see them all)."""
        before: list[str] = []
        for _ in range(int(seconds * 4)):
            sent = await self.texted(borrower)
            if any(words in m for m in sent) and sent == before:
                return sent
            before = sent if any(words in m for m in sent) else []
            await asyncio.sleep(0.25 if not before else 1)
        raise AssertionError(f"no reply with {words!r} in {seconds:.0f} s: {await self.texted(borrower)}")

    async def user_messages(self, borrower: Borrower) -> list[str]:
        """What the conversation's tracker holds from the borrower, in order (Rasa's API)."""
        conversation = pseudonym(borrower.phone, self.settings.hmac_secret)
        url = f"{self.settings.rasa_url}/conversations/{conversation}/tracker"
        async with self.http.get(url, params={"token": self.stack.commands["rasa"][1]["RASA_TOKEN"]}) as r:
            assert r.status == 200
            tracker: dict[str, Any] = await r.json()
        return [e["text"] for e in tracker["events"] if e["event"] == "user"]


@pytest.fixture(scope="module")
async def system() -> AsyncIterator[System]:
    folder = TEST_LOGS / "faults"
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's Redis files, sealed under other keys
    folder.mkdir(parents=True)
    options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                      standin_port=free_port(), redis_port=free_port(), var_dir=folder, log_dir=folder,
                      ledger=_write_ledger(folder, LEDGER_DAY), worker=False)
    env = {**os.environ, **make_env("redis://unused", RASA_URL=f"http://127.0.0.1:{options.rasa_port}",
                                    ACTION_SERVER_URL=f"http://127.0.0.1:{options.action_port}",
                                    GATEWAY_PORT=str(options.gateway_port))}
    env.pop("REDIS_URL")  # its own redis-server, with AOF, which these tests kill
    env.pop("TWILIO_ACCOUNT_SID", None)
    stack = await start_all(options, env)
    settings = load_settings({**env, "REDIS_URL": f"redis://127.0.0.1:{options.redis_port}/0",
                              "TWILIO_API_BASE_URL": f"http://127.0.0.1:{options.standin_port}"})
    try:
        async with aiohttp.ClientSession() as http:
            yield System(stack, settings, http)
    finally:
        await stack.stop()


def borrower(n: int) -> Borrower:
    return Borrower(f"+1415555{n:04d}", "en")  # Ann Lee, $2,600.00 overdue, ID digits 3321


async def test_rasa_killed_mid_conversation_loses_no_message_and_texts_each_reply_once(system: System) -> None:
    ann = borrower(1)
    status, first = await system.sms(ann, "hi there")
    assert status == 200 and first[0].startswith("Hello, this is Example Bank's automated assistant.")
    await system.stack.kill("rasa")
    assert await system.sms(ann, "how much do i owe") == (200, [])  # kept, Twilio hears nothing
    assert await system.sms(ann, "last 4 are 3321") == (200, [])  # kept behind it
    await system.stack.restart("rasa")
    await ready(system.stack, "rasa")
    replies = await system.texted_until(ann, "$2,600.00 overdue")
    assert "date of birth" in replies[0]  # the first kept message's answer came first: the order held
    assert await system.user_messages(ann) == ["hi there", "how much do i owe", "last 4 are 3321"]
    await asyncio.sleep(6)  # another round of every drain loop
    assert await system.texted(ann) == replies  # nothing texted twice
    status, answer = await system.sms(ann, "ok thanks")  # answered directly again
    assert status == 200 and answer


async def test_the_action_server_killed_keeps_the_message_until_it_is_back(system: System) -> None:
    ann = borrower(2)
    await system.stack.kill("actions")
    assert await system.sms(ann, "whats my balance") == (200, [])
    await system.stack.restart("actions")
    await ready(system.stack, "actions")
    replies = await system.texted_until(ann, "automated assistant")
    assert replies[0].startswith("Hello, this is Example Bank's automated assistant.")
    assert await system.user_messages(ann) == ["whats my balance"]


async def test_what_was_written_before_redis_was_killed_is_there_after_it_restarts(system: System) -> None:
    svc = Services(system.settings)
    try:
        conversation = pseudonym(borrower(3).phone, system.settings.hmac_secret)
        account = await svc.ledger.for_conversation(conversation)
        assert account is not None
        promised = date.today() + timedelta(days=3)
        await svc.records.promise(account.account_id, conversation, promised, Decimal("2600.00"))
        await svc.records.opt_out(pseudonym(borrower(4).phone, system.settings.hmac_secret), "keyword")
        before = await _everything(svc)
    finally:
        await svc.close()
    await system.stack.kill("redis")  # SIGKILL: no chance to write anything more
    await system.stack.restart("redis")
    await ready(system.stack, "redis")
    svc = Services(system.settings)
    try:
        assert await _everything(svc) == before
        assert await svc.records.is_opted_out(pseudonym(borrower(4).phone, system.settings.hmac_secret))
    finally:
        await svc.close()


async def _everything(svc: Services) -> dict[bytes, Any]:
    """Every key's contents (sets sorted: a reloaded set may list its members in another order)."""
    redis, dump = svc.redis, {}
    read = {b"string": redis.get, b"hash": redis.hgetall, b"list": lambda k: redis.lrange(k, 0, -1),
            b"zset": lambda k: redis.zrange(k, 0, -1, withscores=True), b"stream": redis.xrange}
    async for key in redis.scan_iter():
        kind = await redis.type(key)
        dump[key] = sorted(await redis.smembers(key)) if kind == b"set" else await read[kind](key)
    return dump


async def test_redis_unreachable_is_503_and_the_borrower_does_not_start_over(system: System) -> None:
    ann = borrower(5)
    await system.sms(ann, "how much do i owe")
    status, verified = await system.sms(ann, "last 4 are 3321")
    assert status == 200 and "$2,600.00 overdue" in verified[0]
    await system.stack.kill("redis")
    assert (await system.sms(ann, "how much do i owe again"))[0] == 503
    await system.stack.restart("redis")
    await ready(system.stack, "redis")
    status, again = await system.sms(ann, "and how much is overdue")
    assert status == 200 and "$2,600.00" in " ".join(again)  # still verified: the same conversation
    assert "automated assistant" not in " ".join(again)  # no new introduction
