"""Turn latency of signed /twilio/sms requests through the whole system.

Starts the real stack (its own redis-server, action server, Rasa, gateway) on
free ports, holds one conversation per requested length, and writes p50/p99
per conversation and latency by turn number to a Markdown file. The same run
is repeated with Rasa's stock RedisTrackerStore as the reference. With --calls N,
it also holds N simultaneous phone calls on /twilio/voice and reports the
latency of each TwiML turn.

    .venv/bin/python scripts/bench_turns.py --turns 20 --turns 200 --calls 20 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twilio.request_validator import RequestValidator  # noqa: E402

from bot.chat import messages_in, signed_sms  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from bot.supervisor import Options, start_all  # noqa: E402
from scripts.bench_common import emit, machine_line, percentile  # noqa: E402
from tests.conftest import free_port  # noqa: E402

# A borrower's side of a long, ordinary conversation: questions that never end it.
SCRIPT = ["how much do i owe", "ok thanks", "what is my balance", "are you a bot?", "hello", "ok"]


def write_ledger(folder: Path, count: int) -> tuple[Path, Path]:
    accounts, installments = folder / "accounts.csv", folder / "installments.csv"
    due = (date.today() - timedelta(days=40)).isoformat()
    a_rows = ["account_id,name,phone,language,timezone,product,currency,id_last4,birth_date,address,employer,region"]
    i_rows = ["account_id,installment_no,due_date,amount_due,amount_paid,paid_date"]
    for n in range(count):
        a_rows.append(f"B{n},Bench {n},+1415666{n:04d},en,America/Los_Angeles,auto,USD,4242,1980-01-01,,,CA")
        i_rows.append(f"B{n},1,{due},300.00,0.00,")
    accounts.write_text("\n".join(a_rows) + "\n", encoding="utf-8")
    installments.write_text("\n".join(i_rows) + "\n", encoding="utf-8")
    return accounts, installments


async def one_turn(http: aiohttp.ClientSession, settings: Settings, phone: str, body: str) -> float:
    form, signature = signed_sms(settings, phone, body)
    started = time.perf_counter()
    async with http.post(f"http://127.0.0.1:{settings.gateway_port}/twilio/sms", data=form,
                         headers={"X-Twilio-Signature": signature}) as response:
        text = await response.text()
    elapsed = time.perf_counter() - started
    if response.status != 200 or not messages_in(text):
        raise RuntimeError(f"turn failed: HTTP {response.status}")
    return elapsed * 1000


async def conversation(http: aiohttp.ClientSession, settings: Settings, phone: str, turns: int) -> list[float]:
    latencies = [await one_turn(http, settings, phone, "4242")]  # verify first, like a real borrower
    for n in range(1, turns):
        latencies.append(await one_turn(http, settings, phone, SCRIPT[n % len(SCRIPT)]))
    return latencies


VOICE_SCRIPT = [{"Digits": "4242"}, {"SpeechResult": "how much do I owe"}, {"SpeechResult": "are you a robot"},
                {"Digits": "9"}, {"SpeechResult": "thank you"}, {"SpeechResult": "what is my balance"}]
# The simultaneous calls: every TwiML turn's latency in ms, and the seconds they all took.
Voice = tuple[list[float], float]


async def voice_turn(http: aiohttp.ClientSession, settings: Settings, fields: dict[str, str], query: str) -> float:
    path = "/twilio/voice" + query
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(settings.public_base_url + path,
                                                                              fields)
    started = time.perf_counter()
    async with http.post(f"http://127.0.0.1:{settings.gateway_port}{path}", data=fields,
                         headers={"X-Twilio-Signature": signature}) as response:
        text = await response.text()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200 or "<Say" not in text:
        raise RuntimeError(f"voice turn failed: HTTP {response.status}")
    return elapsed


async def one_call(http: aiohttp.ClientSession, settings: Settings, n: int) -> list[float]:
    fields = {"CallSid": f"CA{n:032x}", "AccountSid": settings.twilio_account_sid, "From": f"+1415666{n:04d}",
              "To": settings.twilio_from, "Direction": "inbound", "CallStatus": "in-progress"}
    latencies = [await voice_turn(http, settings, fields, "")]
    for turn in VOICE_SCRIPT:
        latencies.append(await voice_turn(http, settings, {**fields, **turn}, "?turn=1"))
    return latencies


def stock_endpoints(folder: Path) -> Path:
    """endpoints.yml with Rasa's own RedisTrackerStore instead of ours."""
    text = (ROOT / "endpoints.yml").read_text(encoding="utf-8")
    path = folder / "endpoints-stock.yml"
    path.write_text(text.replace("type: bot.tracker_store.CompactRedisTrackerStore", "type: redis"), encoding="utf-8")
    return path


def report(results: dict[str, dict[int, list[float]]], command: str) -> str:
    lines = [
        "## Turn latency of `/twilio/sms`, one conversation at a time",
        "",
        machine_line() + ", the whole system on this machine: redis-server, action server, Rasa "
        "(RulePolicy, Redis tracker and lock stores), gateway; the client is on the same machine.",
        "",
        f"Command: `{command}`",
        "",
        "| tracker store | conversation | p50 ms | p99 ms | mean of first quarter ms | mean of last quarter ms |",
        "|---|---|---|---|---|---|",
    ]
    for store, by_length in results.items():
        for turns, values in by_length.items():
            lines.append(f"| {store} | {turns} turns | {statistics.median(values):.0f} | "
                         f"{percentile(values, 0.99):.0f} | {statistics.mean(values[:len(values) // 4]):.0f} | "
                         f"{statistics.mean(values[-(len(values) // 4):]):.0f} |")
    return "\n".join(lines) + "\n"


def voice_report(voice: Voice | None, calls: int) -> str:
    if voice is None:
        return ""
    values, seconds = voice
    return "\n".join([
        "",
        f"## TwiML turn latency of `/twilio/voice`, {calls} simultaneous calls",
        "",
        f"{calls} calls at once, each a greeting and {len(VOICE_SCRIPT)} turns (keyed ID digits, speech, "
        "the repeat key), posted signed as Twilio would, on the same system as above.",
        "",
        "| turns | p50 ms | p99 ms | max ms | turns per second |",
        "|---|---|---|---|---|",
        f"| {len(values)} | {statistics.median(values):.0f} | {percentile(values, 0.99):.0f} | {max(values):.0f} | "
        f"{len(values) / seconds:.1f} |",
        "",
    ])


async def measure(folder: Path, turns: list[int], endpoints: Path,
                  calls: int = 0) -> tuple[dict[int, list[float]], Voice | None]:
    """Start a fresh system with these endpoints and hold one conversation per length.

    Returns the latencies per conversation length and, with ``calls``, those of ``calls``
    simultaneous phone calls and the seconds they took together (else None).
    """
    folder.mkdir()
    options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                      redis_port=free_port(), standin_port=free_port(), var_dir=folder, log_dir=folder,
                      endpoints=endpoints, ledger=write_ledger(folder, max(len(turns), calls)))
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update({
        "TWILIO_AUTH_TOKEN": "bench-token", "DATA_KEYS": Fernet.generate_key().decode(),
        "HMAC_SECRET": "bench-hmac-secret-long-enough-for-the-check", "RASA_TOKEN": "bench",
        "GATEWAY_PORT": str(options.gateway_port), "RASA_URL": f"http://127.0.0.1:{options.rasa_port}",
        "ACTION_SERVER_URL": f"http://127.0.0.1:{options.action_port}",
    })
    stack = await start_all(options, env)
    try:
        settings = load_settings({**env, "REDIS_URL": f"redis://127.0.0.1:{options.redis_port}/0"})
        async with aiohttp.ClientSession() as http:
            results = {length: await conversation(http, settings, f"+1415666{n:04d}", length)
                       for n, length in enumerate(turns)}
            if not calls:
                return results, None
            started = time.perf_counter()
            per_call = await asyncio.gather(*(one_call(http, settings, n) for n in range(calls)))
            return results, ([latency for call in per_call for latency in call], time.perf_counter() - started)
    finally:
        await stack.stop()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours, voice = await measure(folder / "ours", args.turns, ROOT / "endpoints.yml", args.calls)
        stock, _ = await measure(folder / "stock", args.turns, stock_endpoints(folder))
        results = {"ours (CompactRedisTrackerStore)": ours, "stock RedisTrackerStore": stock}
    emit(report(results, "make bench") + voice_report(voice, args.calls), args.out, "# Benchmarks\n\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, action="append", required=True)
    parser.add_argument("--calls", type=int, default=0, help="simultaneous phone calls to hold")
    parser.add_argument("--out", type=Path)
    asyncio.run(main(parser.parse_args()))
