"""A real worker process killed mid-campaign: its successor finishes, nobody gets an SMS twice.

`python -m bot worker` runs as a subprocess against the session's redis-server and the Twilio
stand-in (served by this test). With a rate limit of 40 SMS a second, 200 accounts take about
five seconds; the first worker is SIGKILLed after some dozens, a second one started, and the
jobs the first had in hand come back when their in-progress mark expires (job timeout + 10 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from arq import create_pool
from arq.connections import RedisSettings

from bot.campaigns.campaign import campaign_status, plan_campaign
from bot.core import keys
from bot.ops import twilio_standin
from bot.services import Services
from tests.conftest import ROOT
from tests.test_campaign import daytime_zone, phone, write_ledger, write_list

ACCOUNTS = 200


def stop_worker(process: subprocess.Popen[bytes], seconds: float = 10) -> None:
    """SIGTERM, then SIGKILL if the worker has not gone after ``seconds``: arq's shutdown can hang on a Redis
    connection its cancelled jobs left mid-command (seen once in a clean run: "2 ongoing to cancel", then
    nothing until Redis went away), and a test's teardown must not wait for that."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(seconds)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    if env.get("FAKETIME", "").startswith("@"):  # a clock set to a moment starts there in each process: now
        env = {**env, "FAKETIME": time.strftime("@%Y-%m-%d %H:%M:%S", time.localtime())}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def test_a_killed_worker_sends_nothing_twice_and_its_successor_skips_nobody(
        services: Services, test_env: dict[str, str], tmp_path: Path) -> None:
    await services.ledger.import_files(*write_ledger(tmp_path, ACCOUNTS, daytime_zone()), date.today())
    standin_server = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                        services.settings.twilio_auth_token))
    await standin_server.start_server()
    standin = standin_server.app[twilio_standin.STATE]
    sink = web.Application()  # status callbacks are not what this test is about
    sink.router.add_post("/twilio/status", lambda _: asyncio.sleep(0, web.Response(status=204)))
    sink_server = TestServer(sink)
    await sink_server.start_server()
    standin.deliver_via = (services.settings.public_base_url, str(sink_server.make_url("")).rstrip("/"))
    # The worker must share the test's clock (arq compares the enqueuer's times with its own): under
    # `make test-clock` that is libfaketime's, passed on.
    moved_clock = {k: v for k, v in os.environ.items() if k.startswith(("FAKETIME", "LD_PRELOAD"))}
    env = {"PATH": os.environ.get("PATH", ""), **moved_clock, **test_env,
           "TWILIO_API_BASE_URL": str(standin_server.make_url("")).rstrip("/"),
           "CAMPAIGN_RATE_PER_SECOND": "40", "CAMPAIGN_JOB_TIMEOUT_SECONDS": "3", "CAMPAIGN_MAX_JOBS": "20"}
    path = write_list(tmp_path, [(f"T{n:05d}", "1-30", 5, "gentle_sms", n) for n in range(ACCOUNTS)])
    queue = await create_pool(RedisSettings.from_dsn(services.settings.redis_url))
    planned = await plan_campaign(services, path, None, "kill test", queue)
    await queue.close()
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        deadline = time.monotonic() + 20
        while len(standin.messages) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        at_kill = len(standin.messages)
        assert 0 < at_kill < ACCOUNTS, log.read_text()
        second = start_worker(env, log)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            status = await campaign_status(services, planned.campaign_id)
            if status["waiting"] == 0:
                break
            await asyncio.sleep(0.2)
        assert status["waiting"] == 0, log.read_text()[-3000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                stop_worker(process)
        await standin_server.close()
        await sink_server.close()
    received = Counter(m["to"] for m in standin.messages)
    assert [number for number, times in received.items() if times > 1] == []
    # Every account got its SMS or, if the killed worker had its request in flight, is reported as
    # uncertain (Twilio may or may not have it) and never sent again: see bot/campaigns/campaign.py.
    contacts = await services.redis.hgetall(keys.campaign_contacts(planned.campaign_id))
    uncertain = {phone(int(k.decode()[1:6])) for k, v in contacts.items() if json.loads(v)["state"] == "uncertain"}
    assert {phone(n) for n in range(ACCOUNTS)} - set(received) <= uncertain
    assert status["sent"] + status["uncertain"] == ACCOUNTS and len(uncertain) <= 20  # at most the jobs in hand
