"""Scale-out: two gateways, two Rasa servers and two campaign workers on one Redis, as separate processes.

Borrowers text both gateways in turn, each message sent before the reply to the one before it has come
(so a borrower's messages are in flight on both gateways and both Rasa servers at once), while two workers
share a campaign. Nothing is lost, each conversation's messages are taken in the order they arrived, and
no campaign SMS goes out twice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from bot.campaigns.campaign import campaign_status, plan_campaign
from bot.core.crypto import pseudonym
from bot.core.settings import Settings, load_settings
from bot.ops.chat import messages_in, signed_sms
from bot.ops.supervisor import Options, Stack, ready, start_all
from bot.services import Services
from tests.conftest import TEST_LOGS, daytime_zone, free_port, make_env
from tests.test_campaign import phone, write_ledger, write_list

pytestmark = pytest.mark.integration

BORROWERS = 6
MESSAGES = ["hello", "how much do i owe", "1234", "ok", "what is my balance", "thanks"]
CAMPAIGN = range(20, 40)  # accounts the campaign contacts; the borrowers above are 0-5


@dataclass
class ScaledOut:
    stack: Stack
    settings: Settings
    gateway_ports: tuple[int, int]
    http: aiohttp.ClientSession

    async def sms(self, number: str, body: str, gateway: int) -> tuple[int, list[str]]:
        form, signature = signed_sms(self.settings, number, body)
        url = f"http://127.0.0.1:{self.gateway_ports[gateway]}/twilio/sms"
        async with self.http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
            return response.status, messages_in(await response.text()) if response.status == 200 else []

    async def user_messages(self, number: str) -> list[str]:
        conversation = pseudonym(number, self.settings.hmac_secret)
        token = self.stack.commands["rasa"][1]["RASA_TOKEN"]
        url = f"{self.settings.rasa_urls[1]}/conversations/{conversation}/tracker"  # the other Rasa: shared state
        async with self.http.get(url, params={"token": token}) as response:
            tracker: dict[str, Any] = await response.json()
        return [e["text"] for e in tracker["events"] if e["event"] == "user"]

    async def standin_messages(self) -> list[dict[str, Any]]:
        async with self.http.get(self.settings.twilio_api_base_url + "/standin/messages") as response:
            result: list[dict[str, Any]] = await response.json()
            return result


@pytest.fixture(scope="module")
async def scaled() -> AsyncIterator[ScaledOut]:
    folder = TEST_LOGS / "scale-out"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                      standin_port=free_port(), redis_port=free_port(), var_dir=folder, log_dir=folder,
                      ledger=write_ledger(folder, 40, daytime_zone()), more_rasa_ports=(free_port(),))
    env = {**os.environ, **make_env("redis://unused", RASA_URL=options.rasa_urls,
                                    ACTION_SERVER_URL=f"http://127.0.0.1:{options.action_port}",
                                    GATEWAY_PORT=str(options.gateway_port),
                                    CAMPAIGN_RATE_PER_SECOND="20", CAMPAIGN_MAX_JOBS="5")}
    env.pop("REDIS_URL")  # its own redis-server
    env.pop("TWILIO_ACCOUNT_SID", None)
    stack = await start_all(options, env)
    try:
        second = free_port()
        argv, gateway_env, log_dir = stack.commands["gateway"]
        await stack.start("gateway-2", argv, {**gateway_env, "GATEWAY_PORT": str(second)}, log_dir)
        await ready(stack, "gateway-2")
        await stack.start("worker-2", *stack.commands["worker"])
        settings = load_settings({**gateway_env, "REDIS_URL": f"redis://127.0.0.1:{options.redis_port}/0"})
        async with aiohttp.ClientSession() as http:
            yield ScaledOut(stack, settings, (options.gateway_port, second), http)
    finally:
        await stack.stop()


async def _borrower(scaled: ScaledOut, n: int) -> list[tuple[int, list[str]]]:
    """One borrower's messages, alternately to each gateway, each 0.25 s after the one before."""
    sent = []
    for m, body in enumerate(MESSAGES):
        sent.append(asyncio.create_task(scaled.sms(phone(n), body, (n + m) % 2)))
        await asyncio.sleep(0.25)
    return list(await asyncio.gather(*sent))


async def test_interleaved_conversations_lose_nothing_and_stay_in_order(scaled: ScaledOut) -> None:
    answers = await asyncio.gather(*(_borrower(scaled, n) for n in range(BORROWERS)))
    assert all(status == 200 for one in answers for status, _ in one)
    for n in range(BORROWERS):
        assert await scaled.user_messages(phone(n)) == MESSAGES, f"borrower {n}"
    # A message answered with nothing was kept behind an earlier one: its reply is texted.
    kept = sum(1 for one in answers for _, replies in one if not replies)
    borrowers = {phone(n) for n in range(BORROWERS)}
    for _ in range(120):
        texted = [m for m in await scaled.standin_messages() if m["to"] in borrowers]
        if len(texted) >= kept:
            break
        await asyncio.sleep(0.25)
    assert len(texted) >= kept


async def test_two_workers_share_a_campaign_and_text_nobody_twice(scaled: ScaledOut, tmp_path: Any) -> None:
    svc = Services(scaled.settings)
    try:
        path = write_list(tmp_path, [(f"T{n:05d}", "1-30", 5, "gentle_sms", n) for n in CAMPAIGN])
        queue = await create_pool(RedisSettings.from_dsn(scaled.settings.redis_url))
        planned = await plan_campaign(svc, path, None, "scale-out", queue)
        await queue.close()
        for _ in range(240):
            status = await campaign_status(svc, planned.campaign_id)
            if status["waiting"] == 0:
                break
            await asyncio.sleep(0.25)
        assert status["waiting"] == 0 and status["sent"] == len(CAMPAIGN)
    finally:
        await svc.close()
    sent = Counter(m["to"] for m in await scaled.standin_messages() if m["to"] in {phone(n) for n in CAMPAIGN})
    assert sorted(sent) == sorted(phone(n) for n in CAMPAIGN) and set(sent.values()) == {1}
