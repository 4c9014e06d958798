"""Turns through the whole system under load, beside stock Rasa serving the same model, in one run.

Starts the real system (its own redis-server, action server, Rasa, gateway; bot/ops/supervisor.py) and,
next to it, stock Rasa 3.6 (`rasa run`, REST channel, default tracker and lock stores) on the same
model and the same action server. Then, for each, the same borrowers' conversations:

- load: C conversations in progress at every moment, each T turns one after the other (a closed loop: a
  borrower answers when the reply comes), their starts spread (steady_load), for each C in --load; turns
  per second and p50/p95/p99;
- length: one conversation of up to --length turns; the latency at turn 1, 50, 200, 1,000;
- voice (ours): --calls simultaneous calls on /twilio/voice.

Ours is reached as Twilio would reach it (signed /twilio/sms); stock Rasa at /webhooks/rest/webhook
with the same conversation ids (the actions find the borrower by them). The load generator runs in
this process on the same 2 cores; its CPU time and every component's are reported per turn.

    .venv/bin/python scripts/bench_turns.py --load 20 --load 50 --length 1000 --calls 20 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twilio.request_validator import RequestValidator  # noqa: E402

from bot.core.crypto import pseudonym  # noqa: E402
from bot.core.settings import Settings, load_settings  # noqa: E402
from bot.ops.chat import messages_in, signed_sms  # noqa: E402
from bot.ops.supervisor import Options, Stack, start_all  # noqa: E402
from scripts.bench_common import emit, machine_line, percentile  # noqa: E402
from tests.conftest import free_port  # noqa: E402

# A borrower's side of a long, ordinary conversation: questions that never end it. Half are short replies
# the parse cache serves (bot/rasa_ext/patches.py), half longer questions it does not.
SCRIPT = ["how much do i owe", "ok thanks", "sorry can you tell me again how much i owe you", "are you a bot?",
          "what's the total amount overdue on my account right now", "hello", "thank you",
          "is this an automated message or a robot texting me", "what is my balance",
          "hey there, quick question about my loan balance", "thx", "thanks a lot for the information, appreciate it",
          "hi again", "i forgot, how much is overdue on my auto loan?", "are u a real bot lol",
          "can you remind me what my outstanding balance is"]
LENGTH_MARKS = (1, 50, 200, 1000)
MARK_TURNS = 9  # turns around each mark
COMMAND = ("make bench  # .venv/bin/python scripts/bench_turns.py --load 20 --load 50 --turns 20 --length 1000 "
           "--calls 20 --profile results/profile --out docs/benchmarks.md --gather docs/benchmarks-changes.md "
           "docs/benchmarks-booking.md "
           "docs/benchmarks-screening.md docs/benchmarks-campaign.md")
WARM_UP = 4  # conversations of one pass through SCRIPT, per system, before anything is measured
STOCK_LENGTH = 200  # stock Rasa's turns grow with the conversation; 1,000 of them would take most of an hour
VOICE_SCRIPT = [{"Digits": "4242"}, {"SpeechResult": "how much do I owe"}, {"SpeechResult": "are you a robot"},
                {"Digits": "9"}, {"SpeechResult": "thank you"}, {"SpeechResult": "what is my balance"}]
# One turn: (phone, text) -> milliseconds.
Turn = Callable[[str, str], Awaitable[float]]


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


def phone(n: int) -> str:
    return f"+1415666{n:04d}"


class Phones:
    """Hands out ledger borrowers nobody has talked to yet, so every conversation starts fresh."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> list[str]:
        self.next += count
        return [phone(n) for n in range(self.next - count, self.next)]


def ours(http: aiohttp.ClientSession, settings: Settings) -> Turn:
    async def turn(number: str, text: str) -> float:
        form, signature = signed_sms(settings, number, text)
        started = time.perf_counter()
        async with http.post(f"http://127.0.0.1:{settings.gateway_port}/twilio/sms", data=form,
                             headers={"X-Twilio-Signature": signature}) as response:
            body = await response.text()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not messages_in(body):
            raise RuntimeError(f"turn failed: HTTP {response.status} {body[:200]}")
        return elapsed
    return turn


def stock(http: aiohttp.ClientSession, settings: Settings, url: str) -> Turn:
    async def turn(number: str, text: str) -> float:
        payload = {"sender": pseudonym(number, settings.hmac_secret), "message": text}
        started = time.perf_counter()
        async with http.post(url + "/webhooks/rest/webhook", json=payload) as response:
            answer = await response.json()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not answer:
            raise RuntimeError(f"stock turn failed: HTTP {response.status} {answer}")
        return elapsed
    return turn


def message(n: int) -> str:
    """A borrower's n-th message (from 0): the ID digits first, like a real borrower, then the script."""
    return "4242" if n == 0 else SCRIPT[n % len(SCRIPT)]


async def conversation(turn: Turn, number: str, turns: int) -> list[float]:
    return [await turn(number, message(n)) for n in range(turns)]


@dataclass
class Run:
    """Latencies (ms) of a scenario's measured turns, its wall time, the CPU seconds each process spent in it
    and the turns it ran in all (measured or not)."""

    latencies: list[float]
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    turns_run: int = 0

    @property
    def turns(self) -> int:
        return self.turns_run or len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.turns / self.seconds


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """user + system CPU seconds of each process and its children so far (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent[name] = sum(int(f) for f in fields[11:15]) / tick
    spent["load generator"] = time.process_time()
    return spent


async def measured(pids: dict[str, int], work: Callable[[], Awaitable[list[float]]], turns_run: int = 0) -> Run:
    before, started = cpu_seconds(pids), time.perf_counter()
    latencies = await work()
    seconds, after = time.perf_counter() - started, cpu_seconds(pids)
    return Run(latencies, seconds, {name: after[name] - before[name] for name in after}, turns_run)


async def load(turn: Turn, numbers: list[str], turns: int) -> list[float]:
    """Every borrower starts at the same instant (the warm-up)."""
    per_conversation = await asyncio.gather(*(conversation(turn, n, turns) for n in numbers))
    return [latency for one in per_conversation for latency in one]


async def steady_load(turn: Turn, phones: Phones, count: int, turns: int) -> list[float]:
    """``count`` conversations in progress at every moment; the latencies of one full conversation each.

    Real borrowers do not all send their first message at the same instant. Borrower k first finishes a
    lead-in conversation of (k + 1) * turns // count turns, so the measured conversations start spread over a
    conversation's length, and then a tail conversation that ends the others' when the last lead-in ends:
    no one is measured while fewer than ``count`` are talking. Lead-ins and tails are not measured: with
    them each borrower runs two conversations' turns (``steady_turns``)."""
    async def borrower(k: int, lead_in: str, measured: str, tail: str) -> list[float]:
        length = (k + 1) * turns // count
        await conversation(turn, lead_in, length)
        latencies = await conversation(turn, measured, turns)
        if turns - length:
            await conversation(turn, tail, turns - length)
        return latencies

    numbers = phones.take(3 * count)
    per_borrower = await asyncio.gather(*(borrower(k, *numbers[3 * k:3 * k + 3]) for k in range(count)))
    return [latency for one in per_borrower for latency in one]


def steady_turns(count: int, turns: int) -> int:
    """The turns steady_load runs in all, measured or not."""
    return 2 * count * turns


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


async def one_call(http: aiohttp.ClientSession, settings: Settings, number: str, n: int) -> list[float]:
    fields = {"CallSid": f"CA{n:032x}", "AccountSid": settings.twilio_account_sid, "From": number,
              "To": settings.twilio_from, "Direction": "inbound", "CallStatus": "in-progress"}
    latencies = [await voice_turn(http, settings, fields, "")]
    for step in VOICE_SCRIPT:
        latencies.append(await voice_turn(http, settings, {**fields, **step}, "?turn=1"))
    return latencies


async def calls(http: aiohttp.ClientSession, settings: Settings, numbers: list[str]) -> list[float]:
    per_call = await asyncio.gather(*(one_call(http, settings, number, n) for n, number in enumerate(numbers)))
    return [latency for call in per_call for latency in call]


async def long_conversation(turn: Turn, number: str, fresh: str, turns: int) -> list[float]:
    """One conversation of ``turns`` turns; its last MARK_TURNS turns alternate with the first MARK_TURNS of a
    new conversation (``fresh``), whose latencies follow the long one's in the result. The machine's speed
    drifts by a third over the minutes a long conversation takes: turn 1 measured at the start compares
    with the last turns only roughly; the new conversation's first turns, measured beside them, closely."""
    latencies = await conversation(turn, number, turns - MARK_TURNS)
    beside = []
    for n in range(MARK_TURNS):
        latencies.append(await turn(number, message(turns - MARK_TURNS + n)))
        beside.append(await turn(fresh, message(n)))
    return latencies + beside


def at_marks(latencies: list[float]) -> dict[int, float]:
    """Median latency of nine turns at each mark the conversation reached: turns 1-9 for turn 1, else the
    nine up to the mark (turn 1 is the first). A median: one turn that met a busy moment of the machine
    moved a five-turn mean by half."""
    return {mark: statistics.median(latencies[max(0, mark - MARK_TURNS):max(mark, MARK_TURNS)])
            for mark in LENGTH_MARKS if len(latencies) >= max(mark, MARK_TURNS)}


async def start_stock(stack: Stack, folder: Path, env: dict[str, str], port: int) -> str:
    """Stock Rasa on the same model and action server: REST channel, default stores, default settings."""
    (folder / "stock-credentials.yml").write_text("rest:\n", encoding="utf-8")
    (folder / "stock-endpoints.yml").write_text(
        f"action_endpoint:\n  url: {env['ACTION_SERVER_URL']}/webhook\n  token: {env['RASA_TOKEN']}\n",
        encoding="utf-8")
    await stack.start("rasa-stock", [
        str(Path(sys.executable).parent / "rasa"), "run", "-i", "127.0.0.1", "-p", str(port),
        "--model", str(ROOT / "models"), "--endpoints", str(folder / "stock-endpoints.yml"),
        "--credentials", str(folder / "stock-credentials.yml")], env, folder)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(480):
            try:
                async with http.get(url + "/webhooks/rest/") as response:
                    if response.status == 200:
                        return url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("stock rasa did not start")


@dataclass
class Results:
    load: dict[str, dict[int, Run]] = field(default_factory=dict)
    length: dict[str, Run] = field(default_factory=dict)
    voice: Run | None = None
    profiles: dict[str, Counter[str]] = field(default_factory=dict)  # process -> function -> samples


async def profiled(pids: dict[str, int], folder: Path, work: Callable[[], Awaitable[Run]]) -> tuple[Run, dict[
        str, Counter[str]]]:
    """Run ``work`` with py-spy sampling each process; the samples per innermost function."""
    spies = {name: await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-r", "100", "--format", "raw",
        "-o", str(folder / f"{name}.raw"), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for name, pid in pids.items() if name in ("rasa", "gateway", "actions")}
    await asyncio.sleep(1)  # py-spy attached
    run = await work()
    for spy in spies.values():
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    return run, {name: _innermost(folder / f"{name}.raw") for name in spies}


def _innermost(raw: Path) -> Counter[str]:
    """py-spy's raw output (``frame;frame;... count`` lines) as samples per innermost frame."""
    samples: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines() if raw.exists() else []:
        stack, count = line.rsplit(" ", 1)
        frame = stack.split(";")[-1]
        name, _, where = frame.partition(" (")
        samples[f"{name} ({where.split(':')[0].rsplit('/', 2)[-2:][-1]})"] += int(count)
    return samples


async def measure(folder: Path, args: argparse.Namespace) -> Results:
    conversations = 2 * (3 * sum(args.load) + WARM_UP) + 4 + args.calls
    options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                      redis_port=free_port(), standin_port=free_port(), var_dir=folder, log_dir=folder,
                      ledger=write_ledger(folder, conversations), worker=False,
                      more_rasa_ports=tuple(free_port() for _ in range(args.rasa_processes - 1)))
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update({
        "TWILIO_AUTH_TOKEN": "bench-token", "DATA_KEYS": Fernet.generate_key().decode(),
        "HMAC_SECRET": "bench-hmac-secret-long-enough-for-the-check", "RASA_TOKEN": "bench",
        "GATEWAY_PORT": str(options.gateway_port), "RASA_URL": options.rasa_urls,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{options.action_port}",
    })
    stack = await start_all(options, env)
    try:
        stock_url = await start_stock(stack, folder, stack.commands["actions"][1], free_port())
        pids = {name: process.pid for name, process in stack.children if name != "twilio-standin"}
        settings = load_settings({**env, "REDIS_URL": f"redis://127.0.0.1:{options.redis_port}/0"})
        phones, results = Phones(), Results()
        limits = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=limits, timeout=aiohttp.ClientTimeout(total=120)) as http:
            systems = {"ours": ours(http, settings), "stock Rasa": stock(http, settings, stock_url)}
            for name, turn in systems.items():
                await load(turn, phones.take(WARM_UP), len(SCRIPT))  # first calls of each code path: not measured
                results.load[name] = {}
                for count in args.load:
                    work = functools.partial(measured, pids, functools.partial(
                        steady_load, turn, phones, count, args.turns), turns_run=steady_turns(count, args.turns))
                    if args.profile and name == "ours" and count == max(args.load):
                        args.profile.mkdir(parents=True, exist_ok=True)
                        results.load[name][count], results.profiles = await profiled(pids, args.profile, work)
                    else:
                        results.load[name][count] = await work()
                    print(f"{name}, {count} at once: {results.load[name][count].per_second:.1f} turns/s", flush=True)
            for name, turn in systems.items():
                length = args.length if name == "ours" else min(args.length, STOCK_LENGTH)
                results.length[name] = await measured(pids, functools.partial(
                    long_conversation, turn, *phones.take(2), length))
            if args.calls:
                results.voice = await measured(pids, functools.partial(calls, http, settings, phones.take(args.calls)))
        return results
    finally:
        await stack.stop()


def _cpu_line(run: Run) -> str:
    turns = run.turns
    return ", ".join(f"{name} {1000 * seconds / turns:.0f}" for name, seconds in sorted(
        run.cpu.items(), key=lambda item: -item[1]) if seconds > 0.005)


def report(results: Results, args: argparse.Namespace, command: str) -> str:
    lines = [
        "## Turns under load: ours beside stock Rasa 3.6, same model, same run",
        "",
        machine_line() + ". Everything on this machine: redis-server, the action server, our Rasa "
        f"(our channel, tracker and lock stores on Redis; {args.rasa_processes} process(es)) and gateway, and stock "
        "Rasa (`rasa run`, REST channel, in-memory tracker and lock stores, default settings) on the same model and "
        "action server. The load generator runs on the same cores (its CPU is in the last column's breakdown).",
        "",
        f"Command: `{command}`",
        "",
        f"C borrowers are in a conversation of {args.turns} turns at every moment, each answering each reply as it "
        "comes, with no pause (ours: signed `/twilio/sms` through the gateway; stock: `/webhooks/rest/webhook`). "
        "Their first messages (the ID digits, which start a session and verify: about 1.5 times a later turn) "
        f"come spread as in real traffic, not at one instant: borrower k first holds a lead-in conversation of "
        f"(k + 1) × {args.turns} / C turns, then the measured conversation, then a tail conversation that "
        f"keeps C talking until the last measured turn; lead-ins and tails are not measured (\"measured\" below: "
        f"one conversation per borrower), but turns/s and CPU count every turn run. Each system first serves "
        f"{WARM_UP} conversations of {len(SCRIPT)} turns at once, not measured: the first call of each code path "
        "after a start (imports, Redis scripts, caches) is not a steady-state turn.",
        "",
        "| system | C at once | turns measured | turns/s | p50 ms | p95 ms | p99 ms | CPU ms per turn, by process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, by_count in results.load.items():
        for count, run in by_count.items():
            values = run.latencies
            lines.append(f"| {name} | {count} | {len(values)} | {run.per_second:.1f} | {statistics.median(values):.0f} "
                         f"| {percentile(values, 0.95):.0f} | {percentile(values, 0.99):.0f} | {_cpu_line(run)} |")
    lines += ["", "### One conversation, turn after turn", "",
              f"Median latency of {MARK_TURNS} turns at each mark (turns 1-{MARK_TURNS}, then the {MARK_TURNS} up to "
              "the mark), one conversation alone on the system. Stock Rasa is held to 200 turns. The machine's "
              "speed drifts over the minutes a long conversation takes, so its last turns alternate with the first "
              f"{MARK_TURNS} of a new conversation (\"new, beside\"): the last column compares turns taken at the "
              "same moment.", "",
              "| system | turns held | " + " | ".join(f"turn {m} ms" for m in LENGTH_MARKS)
              + " | last / first | new, beside ms | last / new, beside |",
              "|---|---|" + "---|" * len(LENGTH_MARKS) + "---|---|---|"]
    for name, run in results.length.items():
        held, beside = run.latencies[:-MARK_TURNS], statistics.median(run.latencies[-MARK_TURNS:])
        marks = at_marks(held)
        cells = [f"{marks[m]:.0f}" if m in marks else "—" for m in LENGTH_MARKS]
        last = marks[max(marks)]
        lines.append(f"| {name} | {len(held)} | {' | '.join(cells)} | {last / marks[1]:.2f}× | {beside:.0f} "
                     f"| {last / beside:.2f}× |")
    if results.voice:
        lines += _voice_lines(results.voice, args.calls)
    if results.profiles:
        lines += _profile_lines(results.profiles, max(args.load))
    return "\n".join(lines) + "\n"


def _voice_lines(run: Run, calls: int) -> list[str]:
    return ["", f"### Voice: {calls} simultaneous calls", "",
            f"{calls} calls at once, each a greeting and {len(VOICE_SCRIPT)} turns (keyed ID digits, speech, the "
            "repeat key), posted signed to `/twilio/voice` as Twilio would.", "",
            "| turns | turns/s | p50 ms | p95 ms | p99 ms | CPU ms per turn, by process |",
            "|---|---|---|---|---|---|",
            f"| {len(run.latencies)} | {run.per_second:.1f} | {statistics.median(run.latencies):.0f} | "
            f"{percentile(run.latencies, 0.95):.0f} | {percentile(run.latencies, 0.99):.0f} | {_cpu_line(run)} |"]


def _profile_lines(profiles: dict[str, Counter[str]], count: int) -> list[str]:
    lines = ["", f"### Where the time goes (ours, {count} at once)", "",
             "py-spy sampled each process 100 times a second during that load (its sampling costs that run "
             "some throughput); the functions most often on top of the stack (idle waiting included), as a "
             "share of the process's samples.", ""]
    for name, samples in profiles.items():
        total = sum(samples.values()) or 1
        top = ", ".join(f"`{f}` {100 * n / total:.0f}%" for f, n in samples.most_common(6))
        lines.append(f"- **{name}**: {top}")
    return lines


def gathered(paths: list[Path]) -> str:
    """The other benchmarks' reports, each under its own heading, one level down."""
    parts = []
    for path in paths:
        text = path.read_text(encoding="utf-8").strip()
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
    return "".join(f"\n{part}\n" for part in parts)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = await measure(Path(tmp), args)
    emit(report(results, args, COMMAND) + gathered(args.gather), args.out, "# Benchmarks\n\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, action="append", required=True, help="conversations at once")
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation under load")
    parser.add_argument("--length", type=int, default=1000, help="turns of the one long conversation")
    parser.add_argument("--calls", type=int, default=0, help="simultaneous phone calls to hold")
    parser.add_argument("--rasa-processes", type=int, default=2, help="our Rasa servers behind the gateway")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the processes under the largest load; their raw samples are kept in DIR")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--gather", type=Path, nargs="*", default=[], help="other reports to include after ours")
    asyncio.run(main(parser.parse_args()))
