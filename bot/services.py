"""The shared clients a process needs, created once on first use."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import redis.asyncio as aioredis

from bot.contact.policy import ContactPolicy
from bot.core.crypto import Vault
from bot.core.settings import Settings, load_settings
from bot.domain.agents import Agents
from bot.domain.arrangements import Arrangements
from bot.domain.booking import Bookings, load_field_teams
from bot.domain.consent import Consents
from bot.domain.handoffs import Handoffs
from bot.domain.ledger import Ledger
from bot.domain.plans import ProductPolicy, load_plan_policy
from bot.domain.records import Records
from bot.domain.sla import Sla, load_sla
from bot.domain.turns import PendingTurns, TurnOrder
from bot.field.visits import FieldVisits


@dataclass
class Services:
    """Settings plus the Redis-backed stores built on them."""

    settings: Settings

    @cached_property
    def redis(self) -> aioredis.Redis:
        return aioredis.from_url(self.settings.redis_url)

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.settings.data_keys)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.vault, self.settings.hmac_secret)

    @cached_property
    def records(self) -> Records:
        return Records(self.redis, self.vault)

    @cached_property
    def policy(self) -> ContactPolicy:
        return ContactPolicy(self.redis, self.vault, self.settings.hmac_secret, bookings=self.bookings,
                             attempts_kept_days=self.settings.contact_retention_days)

    @cached_property
    def arrangements(self) -> Arrangements:
        return Arrangements(self.redis, self.vault)

    @cached_property
    def consents(self) -> Consents:
        return Consents(self.redis, self.vault)

    @cached_property
    def plan_policy(self) -> dict[str, ProductPolicy]:
        return load_plan_policy()

    @cached_property
    def handoffs(self) -> Handoffs:
        return Handoffs(self.redis, self.vault, self.records)

    @cached_property
    def sla(self) -> Sla:
        return load_sla(Path(self.settings.sla_file)) if self.settings.sla_file else load_sla()

    @cached_property
    def agents(self) -> Agents:
        return Agents(self.redis)

    @cached_property
    def bookings(self) -> Bookings:
        return Bookings(self.redis, self.vault, load_field_teams())

    @cached_property
    def field_visits(self) -> FieldVisits:
        return FieldVisits(self.redis, self.vault, self.settings.visit_record_retention_days * 86400)

    @cached_property
    def turn_order(self) -> TurnOrder:
        return TurnOrder(self.redis)

    @cached_property
    def pending_turns(self) -> PendingTurns:
        return PendingTurns(self.redis, self.vault)

    async def close(self) -> None:
        if "redis" in self.__dict__:
            await self.redis.close()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


_services: Services | None = None


def services() -> Services:
    """The process-wide services, built from the environment on first call."""
    global _services
    if _services is None:
        _services = Services(load_settings())
    return _services
