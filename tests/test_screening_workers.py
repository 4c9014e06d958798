"""Screening's parts on two real campaign workers (`python -m bot worker` against the test Redis)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings

from bot.campaigns.screening_jobs import PartJob, run_on_workers
from bot.screening.priority import run
from bot.services import Services
from tests.test_campaign_worker import start_worker, stop_worker
from tests.test_screening_partitions import AS_OF, TODAY, generate, outputs


@pytest.fixture
def workers(test_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    moved_clock = {k: v for k, v in os.environ.items() if k.startswith(("FAKETIME", "LD_PRELOAD"))}
    env = {"PATH": os.environ.get("PATH", ""), **moved_clock, **test_env}
    log = tmp_path / "workers.log"
    started = [start_worker(env, log), start_worker(env, log)]
    yield log
    for process in started:
        stop_worker(process)


async def on_workers(services: Services, ledger: tuple[Path, Path], out: Path, job: PartJob) -> None:
    queue = await create_pool(RedisSettings.from_dsn(services.settings.redis_url))
    try:
        await run_on_workers(queue, *ledger, out, out.with_name(f"{out.name}-work"), job, parts=4, wait_seconds=60)
    finally:
        await queue.close()


async def test_two_workers_give_the_one_process_list(services: Services, workers: Path, tmp_path: Path) -> None:
    ledger = generate(tmp_path, 400, 5, TODAY)
    run(*ledger, tmp_path / "whole", AS_OF, quiet=True, parts=1)
    await on_workers(services, ledger, tmp_path / "parts", PartJob(TODAY.isoformat(), AS_OF.isoformat(), records=True))
    assert outputs(tmp_path / "parts") == outputs(tmp_path / "whole"), workers.read_text()[-2000:]
    assert not (tmp_path / "parts-work").exists()


async def test_a_failed_part_fails_the_run_and_writes_nothing(services: Services, workers: Path,
                                                              tmp_path: Path) -> None:
    ledger = generate(tmp_path, 50, 5, TODAY)
    job = PartJob(TODAY.isoformat(), AS_OF.isoformat(), model=str(tmp_path / "no-such-model.json"))
    with pytest.raises(RuntimeError, match="part 0 of 4 failed on its worker"):
        await on_workers(services, ledger, tmp_path / "out", job)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out-work").exists()
