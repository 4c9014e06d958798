"""Screening's parts as arq jobs on the campaign workers, and the run that splits, waits and merges.

``python -m bot screen --workers ...`` splits the ledger (bot.screening.partitions), enqueues one
``screen_partition`` job per part and merges the parts' rows once every job is done. The parts are
files: the workers must see the run's folder (same machine, or a shared mount). A part whose job fails
fails the run with the job's error; nothing is written.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from arq.worker import func

from bot.screening import partitions
from bot.screening.model import PriorityModel, load
from bot.screening.priority import Outputs, load_facts

JOB = "screen_partition"
JOB_TIMEOUT_SECONDS = 3600  # a part of PART_BYTES takes about 10 s; a slow shared disk, much more
IN_FLIGHT = 4  # parts queued at a time: enough to keep a few workers busy, few enough not to wait long


@dataclass(frozen=True)
class PartJob:
    """What a part's job needs besides the plan (JSON-able)."""

    today: str
    as_of: str | None = None
    model: str | None = None  # path of a saved learned priority
    records: bool = False  # read promises, contacts and outcomes from Redis
    now: str | None = None  # the run's moment (ISO): without as_of, every part takes "today" per zone from it


async def screen_partition(ctx: dict[str, Any], plan: dict[str, Any], index: int, job: dict[str, Any]) -> int:
    """One part of a screening run (the arq job); returns how many accounts it screened."""
    split, options = partitions.Split(**plan), PartJob(**job)
    as_of = date.fromisoformat(options.as_of) if options.as_of else None
    # One part at a time per worker (a part is sized to fit memory once, not fifty times); polars works in
    # its own threads, so the worker's loop stays free for its heartbeat and the campaign's jobs.
    async with ctx.setdefault("screening_slot", asyncio.Semaphore(1)):
        facts = None
        if options.records:
            found = await load_facts(ctx["services"], partitions.account_ids(split, index), as_of)
            facts = lambda ids: found  # noqa: E731 - the part's own ids, read above
        model = _model(ctx, options.model) if options.model else None
        now = datetime.fromisoformat(options.now) if options.now else None
        return await asyncio.to_thread(partitions.screen_part, split, index, date.fromisoformat(options.today),
                                       as_of, facts, model, now=now)


def _model(ctx: dict[str, Any], path: str) -> PriorityModel:
    """The saved model, loaded once per worker and file version."""
    key = (path, Path(path).stat().st_mtime_ns)
    cache = ctx.setdefault("screening_models", {})
    if key not in cache:
        cache.clear()
        cache[key] = load(Path(path))
    model: PriorityModel = cache[key]
    return model


# No timeout of its own: arq holds every job of a killed worker for its longest function timeout, so an hour
# here kept a killed worker's campaign contacts from its successor for an hour. A part (PART_BYTES, about 10 s)
# runs within the campaign's job timeout (CAMPAIGN_JOB_TIMEOUT_SECONDS, 120 s by default).
FUNCTION = func(screen_partition, name=JOB, keep_result=JOB_TIMEOUT_SECONDS, max_tries=1)


async def run_on_workers(queue: Any, accounts_csv: Path, installments_csv: Path, out_dir: Path, work: Path,
                         job: PartJob, parts: int | None = None, previous: Path | None = None,
                         card: dict[str, Any] | None = None, wait_seconds: float = JOB_TIMEOUT_SECONDS,
                         in_flight: int = IN_FLIGHT) -> Outputs:
    """Split here, screen the parts on the workers listening on ``queue`` (an ArqRedis), merge here.

    At most ``in_flight`` parts are queued at a time, so that a part does not wait its turn on a busy worker
    for longer than its job may run; a failed part stops the queueing, and the run ends once the parts
    already queued are done (nothing is then written, and the parts are removed).

    Raises:
        ScreeningInputError: a malformed input file (from the split, or any part's checks).
        RuntimeError: a part's job failed, or was not done within ``wait_seconds``; its error is named.
    """
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out folder")
    try:
        plan = await asyncio.to_thread(partitions.split, accounts_csv, installments_csv, work,
                                       parts or partitions.parts_for(installments_csv))
        await _screen_parts(queue, plan, job, wait_seconds, in_flight)
        return await asyncio.to_thread(partitions.merge, plan, out_dir, previous, card)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _screen_parts(queue: Any, plan: partitions.Split, job: PartJob, wait_seconds: float, in_flight: int
                        ) -> None:
    waiting: dict[int, Any] = {}
    failure: RuntimeError | None = None
    for index in range(plan.parts):
        if len(waiting) >= in_flight:
            failure = await _finish_one(waiting, plan, wait_seconds)
        if failure:
            break
        waiting[index] = await queue.enqueue_job(JOB, partitions.as_job(plan), index, asdict(job))
    while waiting:  # every queued part ends before the parts are removed; the first failure is the one said
        found = await _finish_one(waiting, plan, wait_seconds)
        failure = failure or found
    if failure:
        raise failure


async def _finish_one(waiting: dict[int, Any], plan: partitions.Split, wait_seconds: float) -> RuntimeError | None:
    """Wait for the oldest queued part; the error that ends the run, if it failed."""
    index = min(waiting)
    try:
        await waiting.pop(index).result(timeout=wait_seconds, poll_delay=0.2)
    except Exception as exc:  # arq re-raises the job's own exception here
        return RuntimeError(f"part {index} of {plan.parts} failed on its worker: {exc!r}")
    return None
