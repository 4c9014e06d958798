"""The campaign worker: arq running campaign contacts (and screening's parts), as many processes as needed.

``python -m bot worker`` runs one; every worker on the same Redis shares every campaign.
See bot/campaigns/campaign.py for why arq and how a killed worker's jobs are finished by another.

Environment (besides the bot's settings): CAMPAIGN_RATE_PER_SECOND (per sender number,
across all workers; 0 unlimited; default 10), CAMPAIGN_DAILY_CAP (per sender number and UTC
day; 0 none), CAMPAIGN_REPLY_WAIT_MINUTES (before the call of "SMS then call"; default 240),
CAMPAIGN_JOB_TIMEOUT_SECONDS (a job's longest run; a killed worker's jobs run again this
plus 10 s later; default 120), CAMPAIGN_MAX_JOBS (jobs at once per worker; default 50).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.worker import run_worker

from bot.campaigns import screening_jobs
from bot.campaigns.campaign import RateLimiter, Runner, TryLater
from bot.contact.outbound import Sender, twilio_client
from bot.core.settings import load_settings
from bot.services import Services

MAX_TRIES = 50  # reruns after a kill, a held lock or a full day; real errors are recorded, not retried


async def campaign_contact(ctx: dict[str, Any], campaign_id: str, account_id: str, kind: str, day: str) -> str:
    """One contact of one account in one campaign (the arq job)."""
    runner: Runner = ctx["runner"]
    try:
        # Our own deadline, shorter than arq's: arq does not rerun a job that timed out.
        return await asyncio.wait_for(runner.run(campaign_id, account_id, kind, day, ctx["job_try"]),
                                      max(1, runner.config.job_timeout_seconds - 1))
    except TryLater as later:
        raise Retry(defer=later.seconds) from later
    except asyncio.TimeoutError:
        raise Retry(defer=1) from None


async def startup(ctx: dict[str, Any]) -> None:
    services = Services(ctx["settings"])
    config = services.settings.campaign
    client = twilio_client(services.settings)
    limiter = RateLimiter(services.redis, services.settings.twilio_from, config.rate_per_second)
    sender = Sender(client, services.settings, services.policy, services.redis,
                    lock_seconds=config.job_timeout_seconds, throttle=limiter.acquire)
    ctx.update(services=services, client=client, runner=Runner(services, sender, ctx["redis"], config))


async def shutdown(ctx: dict[str, Any]) -> None:
    if "client" in ctx:
        await ctx["client"].http_client.close()
    if "services" in ctx:
        await ctx["services"].close()


def worker_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """arq's worker settings, from the environment (read when the worker starts, not at import)."""
    settings = load_settings(env)
    config = settings.campaign
    return {
        "functions": [campaign_contact, screening_jobs.FUNCTION],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup, "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": config.max_jobs,
        "job_timeout": config.job_timeout_seconds,
        "max_tries": MAX_TRIES,
        "keep_result": 0,  # the campaign keeps each contact's outcome; re-planning may rerun a blocked one
        "poll_delay": 0.2,
    }


def run(env: Mapping[str, str] | None = None) -> None:
    """Run one worker until SIGINT or SIGTERM."""
    # The twilio library logs every request and response at INFO: too much at campaign rates.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("twilio.async_http_client").setLevel(logging.WARNING)
    run_worker(worker_settings(os.environ if env is None else env))
