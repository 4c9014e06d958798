"""Retention: what expires by itself keeps the configured period; what grows is trimmed by the sweep."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from urllib.parse import urlparse

from cryptography.fernet import Fernet

from bot.contact.policy import Attempt
from bot.core import keys
from bot.privacy import retention
from bot.rasa_ext.tracker_store import CompactRedisTrackerStore
from bot.services import Services
from tests.test_tracker_store import DOMAIN, converse

DAY = 86400


async def test_the_sweep_trims_old_audit_events_decisions_and_visit_outcomes(services: Services) -> None:
    redis, settings = services.redis, services.settings
    now = time.time()
    for days_ago, n in ((settings.audit_retention_days + 1, 1), (settings.audit_retention_days - 1, 2)):
        await redis.xadd(keys.AUDIT_STREAM, {"event": f"e{n}"}, id=f"{int((now - days_ago * DAY) * 1000)}-0")
    for days_ago in (settings.contact_retention_days + 2, 1):
        await redis.xadd(keys.CONTACT_DECISIONS, {"decision": "x"}, id=f"{int((now - days_ago * DAY) * 1000)}-0")
    outcomes = keys.field_visit_outcomes("CN001")
    await redis.zadd(outcomes, {b"old": now - (settings.visit_record_retention_days + 1) * DAY, b"new": now - DAY})

    swept = await retention.sweep(services, now)

    assert swept == retention.Swept(audit_events=1, contact_decisions=1, visit_outcomes=1)
    assert [f[b"event"] for _, f in await redis.xrange(keys.AUDIT_STREAM)] == [b"e2"]
    assert await redis.xlen(keys.CONTACT_DECISIONS) == 1
    assert await redis.zrange(outcomes, 0, -1) == [b"new"]
    assert await retention.sweep(services, now) == retention.Swept(0, 0, 0)  # nothing more to do


async def test_contact_attempts_expire_after_the_configured_period(services: Services) -> None:
    svc = Services(dataclasses.replace(services.settings, contact_retention_days=12))
    await svc.policy.record_attempt("CN001", "a1", Attempt(datetime.now(timezone.utc), "sms", False))
    for key in (keys.contact_attempts("CN001"), keys.contact_attempt_times("CN001")):
        assert 12 * DAY - 5 < await services.redis.ttl(key) <= 12 * DAY
    await svc.close()


async def test_a_conversation_expires_its_retention_period_after_its_last_turn(redis_url: str) -> None:
    url = urlparse(redis_url)
    store = CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), host=url.hostname, port=url.port,
                                     db=1, retention_days="3")  # as endpoints.yml passes it
    store.red.flushdb()
    await converse(store, 2)
    for key in (store.key_prefix + "c_test", store.key_prefix + "archive:c_test"):
        assert 3 * DAY - 5 < store.red.ttl(key) <= 3 * DAY
