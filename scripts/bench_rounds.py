"""Several rounds of the turn benchmark's load on one stack, to compare two checkouts side by side.

The machine's speed drifts by up to a third over minutes, so two versions compare only when measured
in turn, close together. This runs C conversations of T turns at once (bench_turns.py's borrowers and
script), R times on one fresh stack of the checkout at --root, and prints each round: turns per second,
p50/p95/p99, CPU ms per turn of each process, and the first turns (which all arrive at once) apart from
the later ones. Round 1 is cold (first calls after a start); compare the later rounds. With --steady the
rounds are bench_turns.steady_load's (C conversations at every moment, their first turns spread). The
stack takes its settings from the environment too, so the same checkout compares with itself under
another setting:

    for n in 64 2 64 2; do RASA_TURNS_AT_ONCE=$n .venv/bin/python scripts/bench_rounds.py --steady; done

    git worktree add /tmp/before 3ca8ccf && ln -s "$PWD/.venv" /tmp/before/.venv
    (cd /tmp/before && RASA_TELEMETRY_ENABLED=false .venv/bin/rasa train --fixed-model-name collections --out models)
    for root in /tmp/before "$PWD" /tmp/before "$PWD"; do .venv/bin/python scripts/bench_rounds.py --root $root; done
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet


async def rounds(args: argparse.Namespace) -> None:
    import bench_turns as bench  # from the checkout under test (sys.path, below)
    from bench_common import percentile

    try:
        from bot.core.settings import load_settings
        from bot.ops.supervisor import Options, start_all
    except ImportError:  # a checkout from before bot/ had packages (issue 19)
        from bot.settings import load_settings  # type: ignore[no-redef]
        from bot.supervisor import Options, start_all  # type: ignore[no-redef]
    from tests.conftest import free_port

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The stack as bench_turns.measure starts ours, spelled out here: older checkouts must run too.
        options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                          redis_port=free_port(), standin_port=free_port(), var_dir=folder, log_dir=folder,
                          ledger=bench.write_ledger(folder, 3 * args.conversations * args.rounds), worker=False,
                          more_rasa_ports=tuple(free_port() for _ in range(args.rasa_processes - 1)))
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
        env.update({"TWILIO_AUTH_TOKEN": "bench-token", "DATA_KEYS": Fernet.generate_key().decode(),
                    "HMAC_SECRET": "bench-hmac-secret-long-enough-for-the-check", "RASA_TOKEN": "bench",
                    "GATEWAY_PORT": str(options.gateway_port), "RASA_URL": options.rasa_urls,
                    "ACTION_SERVER_URL": f"http://127.0.0.1:{options.action_port}"})
        stack = await start_all(options, env)
        try:
            settings = load_settings({**env, "REDIS_URL": f"redis://127.0.0.1:{options.redis_port}/0"})
            pids = {name: process.pid for name, process in stack.children if name != "twilio-standin"}
            phones = bench.Phones()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                turn = bench.ours(http, settings)
                for number in range(1, args.rounds + 1):
                    before, started = bench.cpu_seconds(pids), time.perf_counter()
                    if args.steady:
                        every = await bench.steady_load(turn, phones, args.conversations, args.turns)
                        conversations = [every[k:k + args.turns] for k in range(0, len(every), args.turns)]
                        turns_run = bench.steady_turns(args.conversations, args.turns)
                    else:
                        conversations = await asyncio.gather(*(bench.conversation(turn, phone, args.turns)
                                                               for phone in phones.take(args.conversations)))
                        every = [latency for one in conversations for latency in one]
                        turns_run = len(every)
                    seconds, after = time.perf_counter() - started, bench.cpu_seconds(pids)
                    first = [one[0] for one in conversations]
                    later = [latency for one in conversations for latency in one[1:]]
                    cpu = {name: 1000 * (after[name] - before[name]) / turns_run for name in after}
                    print(f"round {number}: {turns_run / seconds:.1f} turns/s, p50 {percentile(every, 0.5):.0f} "
                          f"p95 {percentile(every, 0.95):.0f} p99 {percentile(every, 0.99):.0f} ms; first turns "
                          f"p50 {percentile(first, 0.5):.0f} max {max(first):.0f}, later p99 "
                          f"{percentile(later, 0.99):.0f}; CPU ms per turn {sum(cpu.values()):.1f}: "
                          + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items()), flush=True)
        finally:
            await stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the checkout to run (its code, model and scripts)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rasa-processes", type=int, default=2)
    parser.add_argument("--steady", action="store_true",
                        help="bench_turns.steady_load: C conversations at every moment, their starts spread")
    args = parser.parse_args()
    root = args.root.resolve()
    sys.path[:0] = [str(root), str(root / "scripts")]
    os.chdir(root)
    print(f"{root}:", flush=True)
    asyncio.run(rounds(args))


if __name__ == "__main__":
    main()
