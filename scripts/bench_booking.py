"""Visit booking under contention: throughput and latency of simultaneous `Bookings.book` calls.

Starts its own redis-server on a free port in a temporary folder (AOF on, as in the tests),
then makes every attempt at once, one conversation and account each, spread over several
Redis connections and over a set of slots with two teams each, and checks that exactly
slots x teams attempts won and that no team is booked twice.

    .venv/bin/python scripts/bench_booking.py --attempts 1000 --out docs/benchmarks-booking.md
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core import keys  # noqa: E402
from bot.core.crypto import Vault  # noqa: E402
from bot.domain.booking import Bookings, FieldTeams, Region, Slot, Staff, Team, candidate_slots  # noqa: E402
from bot.domain.visit_times import Preference  # noqa: E402
from scripts.bench_common import PYTHON, emit, machine_line, percentile  # noqa: E402
from tests.conftest import redis_server  # noqa: E402

REGION = Region(code="BENCH", timezone="Asia/Shanghai", working_days=frozenset(range(7)), day_start=clock(9),
                day_end=clock(18), visit_minutes=60, travel_buffer_minutes=30,
                teams=tuple(Team(f"BENCH-T{n}", (Staff(f"Officer {n}A", f"B-{n}A"), Staff(f"Officer {n}B", f"B-{n}B")))
                            for n in (1, 2)))


async def timed_book(store: Bookings, n: int, slot: Slot) -> tuple[float, bool]:
    started = time.perf_counter()
    booking = await store.book(f"c_{n:06d}", f"B{n}", slot, {"place": "home", "address": "bench", "language": "en"})
    return (time.perf_counter() - started) * 1000, booking is not None


async def check_no_double_booking(client: aioredis.Redis, slots: list[Slot]) -> int:
    """Booked teams across the slots, checked against the bookings they point to."""
    booked = 0
    for slot in slots:
        for value in (await client.hgetall(keys.visit_slot(slot.slot_id))).values():
            assert value.startswith(b"B|"), value
            assert await client.hget(keys.visit_booking(value[2:].decode()), "slot") == slot.slot_id.encode()
            booked += 1
    return booked


async def script_usec(client: aioredis.Redis) -> float:
    """Redis's own time per script call (EVALSHA), in microseconds."""
    stats = await client.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))


async def measure(url: str, attempts: int, slot_count: int, clients_count: int, pool: int) -> dict[str, float]:
    teams = FieldTeams(hold_minutes=10, days_ahead=14, regions={REGION.code: REGION})
    vault = Vault((Fernet.generate_key().decode(),))
    # Each client has at most `pool` connections; attempts beyond that wait for one, as in production.
    clients = [aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=pool))
               for _ in range(clients_count)]
    stores = [Bookings(client, vault, teams) for client in clients]
    candidates = candidate_slots(REGION, Preference(), datetime.now(ZoneInfo("UTC")), teams.days_ahead)
    slots, spare = candidates[:slot_count], candidates[slot_count]
    try:
        await stores[0].book("c_warmup", "WARMUP", spare, {})  # loads the scripts once, outside the measure
        await stores[0].cancel("WARMUP")
        await clients[0].config_resetstat()
        started = time.perf_counter()
        results = await asyncio.gather(*(timed_book(stores[n % clients_count], n, slots[n % slot_count])
                                         for n in range(attempts)))
        seconds = time.perf_counter() - started
        winners = sum(won for _, won in results)
        expected = slot_count * REGION.capacity
        assert winners == expected, f"{winners} winners, expected {expected}"
        assert await check_no_double_booking(clients[0], slots) == expected
        latencies = [ms for ms, _ in results]
        return {"attempts": attempts, "slots": slot_count, "winners": winners, "clients": clients_count,
                "connections": clients_count * pool, "script_usec": await script_usec(clients[0]),
                "seconds": seconds, "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
                "p99": percentile(latencies, 0.99), "max": max(latencies), "rate": attempts / seconds}
    finally:
        for client in clients:
            await client.close()


def report(figures: dict[str, float], command: str) -> str:
    return "\n".join([
        "## Visit booking under contention",
        "",
        machine_line(PYTHON) + ", redis-server on the same machine (AOF on, as in the tests).",
        f"{figures['attempts']:.0f} `Bookings.book` attempts at once, each a different conversation and account, "
        f"over {figures['clients']:.0f} Redis clients of at most {figures['connections'] / figures['clients']:.0f} "
        f"connections each, on {figures['slots']:.0f} slots with {REGION.capacity} teams each. Latency is per "
        "attempt, from the call to its answer: sealing the record (one Fernet encryption per team), waiting for a "
        "connection, and the Lua script. With every attempt made at the same instant it is mostly that wait, "
        "so p50 is about half the run; the script itself takes Redis "
        f"{figures['script_usec']:.0f} µs per call (INFO commandstats, evalsha).",
        "",
        f"Command: `{command}`",
        "",
        "| attempts | slots x teams | winners | p50 ms | p95 ms | p99 ms | max ms | attempts per second |",
        "|---|---|---|---|---|---|---|---|",
        f"| {figures['attempts']:.0f} | {figures['slots']:.0f} x {REGION.capacity} | {figures['winners']:.0f} | "
        f"{figures['p50']:.1f} | {figures['p95']:.1f} | {figures['p99']:.1f} | {figures['max']:.1f} | "
        f"{figures['rate']:.0f} |",
        "",
        "Winners equal slots x teams (checked), and every booked team on every slot points to a booking of "
        "that slot: no slot was booked twice.",
        "",
    ])


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as url:
        figures = asyncio.run(measure(url, args.attempts, args.slots, args.clients, args.pool))
    command = " ".join(["scripts/bench_booking.py", *sys.argv[1:]])
    emit(report(figures, f".venv/bin/python {command}"), args.out, "# Benchmarks: visit booking\n\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4, help="Redis clients the attempts are spread over")
    parser.add_argument("--pool", type=int, default=4, help="connections per client, at most")
    parser.add_argument("--out", type=Path)
    main(parser.parse_args())
