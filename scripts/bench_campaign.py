"""Campaign dispatch: SMS per second through real workers to the Twilio stand-in, and rate-limit adherence.

Starts its own redis-server (AOF on, as in the tests), imports a generated ledger of N accounts
(in a time zone where it is daytime now, so the contact policy allows contact), serves the
Twilio stand-in in this process (its status callbacks switched off: dispatch is what is
measured) and starts W `python -m bot worker` processes. Run 1 plans a campaign of N gentle
SMS with no rate limit and measures messages per second at the stand-in. Run 2 restarts the
workers with a limit of R a second, plans a campaign of R x S accounts and counts, per clock
second, the messages the stand-in received: none may exceed R.

    .venv/bin/python scripts/bench_campaign.py --accounts 100000 --workers 4 --out docs/benchmarks-campaign.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from arq import create_pool
from arq.connections import RedisSettings
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.campaigns.campaign import campaign_status, plan_campaign  # noqa: E402
from bot.core.settings import load_settings  # noqa: E402
from bot.ops import twilio_standin  # noqa: E402
from bot.services import Services  # noqa: E402
from scripts.bench_common import PYTHON, emit  # noqa: E402
from tests.conftest import daytime_zone, make_env, redis_server  # noqa: E402
from tests.test_campaign import write_ledger, write_list  # noqa: E402


def arrivals_middleware(times: list[float]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/Messages.json") and response.status == 201:
            times.append(time.time())
        return response
    return record


def start_workers(count: int, env: dict[str, str], log: Path) -> list[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        return [subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env, stdout=out,
                                 stderr=subprocess.STDOUT) for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)


async def run_campaign(svc: Services, folder: Path, accounts: int, name: str, times: list[float],
                       workers: list[subprocess.Popen[bytes]]) -> tuple[float, float, dict[str, Any]]:
    """Plan a campaign of ``accounts`` gentle SMS; returns planning seconds, sending seconds and its status."""
    path = write_list(folder, [(f"T{n:05d}", "1-30", 5, "gentle_sms", n) for n in range(accounts)], f"{name}.csv")
    queue = await create_pool(RedisSettings.from_dsn(svc.settings.redis_url))
    before = len(times)  # workers start sending while the campaign is still being planned
    started = time.perf_counter()
    planned = await plan_campaign(svc, path, None, name, queue)
    planning = time.perf_counter() - started
    await queue.close()
    last_report = time.monotonic()
    while len(times) - before < accounts:
        if any(w.poll() is not None for w in workers):
            raise RuntimeError("a worker exited; see its log")
        if time.monotonic() - last_report > 10:
            print(f"  {len(times) - before} of {accounts} SMS at the stand-in", flush=True)
            last_report = time.monotonic()
        await asyncio.sleep(0.2)
    sending = times[-1] - times[before]
    status = await campaign_status(svc, planned.campaign_id)
    while status["waiting"]:  # the last outcomes are recorded just after the stand-in answered
        await asyncio.sleep(0.2)
        status = await campaign_status(svc, planned.campaign_id)
    return planning, sending, status


async def bench(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        return await bench_in(args, Path(tmp))


async def bench_in(args: argparse.Namespace, folder: Path) -> str:
    times: list[float] = []
    twilio_standin._report = lambda app, url, updates: None  # no status callbacks: dispatch only
    with redis_server(folder) as redis_url:
        token = "bench-auth-token-0123456789abcdef"
        env = make_env(redis_url, TWILIO_AUTH_TOKEN=token, DATA_KEYS=Fernet.generate_key().decode())
        standin_app = twilio_standin.init_app(load_settings(env).twilio_account_sid, token)
        standin_app.middlewares.append(arrivals_middleware(times))
        standin = TestServer(standin_app)
        await standin.start_server()
        env.update(TWILIO_API_BASE_URL=str(standin.make_url("")).rstrip("/"), PATH=os.environ.get("PATH", ""),
                   CAMPAIGN_MAX_JOBS=str(args.max_jobs))
        svc = Services(load_settings(env))
        started = time.perf_counter()
        await svc.ledger.import_files(*write_ledger(folder, args.accounts, daytime_zone()), date.today())
        importing = time.perf_counter() - started
        print(f"imported {args.accounts} accounts in {importing:.1f} s", flush=True)
        log = folder / "workers.log"

        workers = start_workers(args.workers, {**env, "CAMPAIGN_RATE_PER_SECOND": "0"}, log)
        try:
            planning, sending, status = await run_campaign(svc, folder, args.accounts, "unlimited", times, workers)
        finally:
            stop_workers(workers)
        rate_off = args.accounts / sending
        print(f"rate off: {args.accounts} SMS in {sending:.1f} s = {rate_off:.0f}/s (planning {planning:.1f} s)",
              flush=True)

        limited = args.limit * args.seconds
        workers = start_workers(args.workers, {**env, "CAMPAIGN_RATE_PER_SECOND": str(args.limit)}, log)
        first = len(times)
        try:
            _, limited_seconds, limited_status = await run_campaign(svc, folder, limited, "limited", times, workers)
        finally:
            stop_workers(workers)
        per_second = Counter(int(t) for t in times[first:])
        full = sorted(per_second.values())
        print(f"limit {args.limit}/s: {limited} SMS in {limited_seconds:.1f} s; per second max {max(full)}, "
              f"counts {[per_second[s] for s in sorted(per_second)]}", flush=True)
        await standin.close()
        await svc.close()
    assert status["sent"] == args.accounts and limited_status["sent"] == limited, (status, limited_status)
    assert max(full) <= args.limit, per_second
    command = (f".venv/bin/python scripts/bench_campaign.py --accounts {args.accounts} --workers {args.workers} "
               f"--max-jobs {args.max_jobs} --limit {args.limit} --seconds {args.seconds} --out {args.out}")
    return "\n".join([
        "# Campaign dispatch benchmark",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Machine: {platform.platform()}, {PYTHON}, {os.cpu_count()} CPUs. "
        f"Everything on one machine: redis-server (AOF on), the Twilio stand-in (in the benchmark's process, "
        f"status callbacks off), {args.workers} worker processes with {args.max_jobs} jobs each. Every SMS goes "
        "through the whole path: arq job, ledger read and decryption, the contact policy (decision recorded), "
        "the outbox key, the twilio library's async client over HTTP, the attempt and the campaign outcome.",
        "",
        "| run | SMS | seconds | SMS per second | per-second maximum at the stand-in |",
        "|---|---:|---:|---:|---:|",
        f"| rate limit off | {args.accounts:,} | {sending:.1f} | {rate_off:,.0f} | - |",
        f"| limit {args.limit}/s | {limited:,} | {limited_seconds:.1f} | {limited / len(per_second):,.1f} "
        f"(over {len(per_second)} clock seconds) | {max(full)} |",
        "",
        f"Importing the generated ledger of {args.accounts:,} accounts took {importing:.1f} s; planning the "
        f"campaign (reading the list, storing {args.accounts:,} contacts, enqueueing as many jobs) {planning:.1f} s.",
        "",
        f"With the limit on, the stand-in's count of messages per clock second was, second by second: "
        f"{', '.join(str(per_second[s]) for s in sorted(per_second))} (never above {args.limit}; the first "
        "and last seconds may be partial).",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-jobs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=50, help="SMS per second in the limited run")
    parser.add_argument("--seconds", type=int, default=10, help="the limited run's length at the limit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    emit(asyncio.run(bench(args)), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
