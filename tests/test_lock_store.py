"""Rasa's ticket lock shared by several Rasa processes: the stock store's race, and ours without it."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
from urllib.parse import urlparse

import pytest
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_ext.lock_store import AtomicRedisLockStore

CONVERSATION = "c_lock_test"


def _where(redis_url: str) -> dict[str, object]:
    url = urlparse(redis_url)
    return {"host": url.hostname, "port": url.port, "db": 2}


@pytest.fixture
def ours(redis_url: str) -> AtomicRedisLockStore:
    store = AtomicRedisLockStore(**_where(redis_url))
    store.red.flushdb()
    return store


class _PausedAfterRead(RedisLockStore):
    """The stock store, stopped between reading the lock and writing it back."""

    def __init__(self, read: threading.Event, go: threading.Event, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.read, self.go = read, go

    def get_lock(self, conversation_id: str):  # type: ignore[no-untyped-def]
        lock = super().get_lock(conversation_id)
        self.read.set()
        self.go.wait(5)
        return lock


def test_the_stock_store_gives_two_processes_the_same_ticket(redis_url: str) -> None:
    """What Rasa 3.6 does when two instances take a ticket at once: both are served together."""
    read, go = threading.Event(), threading.Event()
    slow = _PausedAfterRead(read, go, **_where(redis_url))
    slow.red.flushdb()
    fast = RedisLockStore(**_where(redis_url))  # type: ignore[arg-type]
    numbers: list[int] = []
    first = threading.Thread(target=lambda: numbers.append(slow.issue_ticket(CONVERSATION)))
    first.start()
    assert read.wait(5)
    numbers.append(fast.issue_ticket(CONVERSATION))  # while the first has read but not written
    go.set()
    first.join(5)
    assert numbers == [0, 0]
    assert len(json.loads(fast.red.get("lock:" + CONVERSATION))["tickets"]) == 1  # one ticket lost


def _issue_many(redis_url: str, count: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = AtomicRedisLockStore(**_where(redis_url))
    out.put([store.issue_ticket(CONVERSATION, 60) for _ in range(count)])


def test_two_processes_issuing_at_once_get_distinct_tickets_and_none_is_lost(ours: AtomicRedisLockStore,
                                                                            redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_issue_many, args=(redis_url, 300, out)) for _ in range(3)]
    for worker in workers:
        worker.start()
    numbers = [n for _ in workers for n in out.get(timeout=60)]
    for worker in workers:
        worker.join(10)
    assert sorted(numbers) == list(range(900))
    lock = ours.get_lock(CONVERSATION)
    assert lock is not None and len(lock.tickets) == 900 and lock.now_serving == 0


# Tickets expire by redis-server's clock and Rasa's TicketLock checks them by its own: they must agree,
# which `make test-clock` (libfaketime moves Python's clock, not redis-server's) cannot give.
@pytest.mark.skipif("FAKETIME" in os.environ, reason="compares Python's clock with redis-server's")
async def test_turns_are_served_one_at_a_time_in_ticket_order(ours: AtomicRedisLockStore, redis_url: str) -> None:
    other = AtomicRedisLockStore(**_where(redis_url))  # a second Rasa process
    served: list[str] = []

    async def turn(store: AtomicRedisLockStore, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with store.lock(CONVERSATION, lock_lifetime=30, wait_time_in_seconds=0.01):
            served.append(name + " in")
            await asyncio.sleep(0.05)
            served.append(name + " out")

    await asyncio.gather(turn(ours, "a", 0), turn(other, "b", 0.01), turn(ours, "c", 0.02), turn(other, "d", 0.03))
    assert served == ["a in", "a out", "b in", "b out", "c in", "c out", "d in", "d out"]
    assert ours.red.exists("lock:" + CONVERSATION) == 0  # the last one out removed it


def test_expired_tickets_are_dropped_and_the_key_expires_with_them(ours: AtomicRedisLockStore) -> None:
    ours.issue_ticket(CONVERSATION, 0.05)
    assert 0 < ours.red.pttl("lock:" + CONVERSATION) <= 1100
    live = ours.issue_ticket(CONVERSATION, 60)
    assert ours.get_lock(CONVERSATION).now_serving == 0  # type: ignore[union-attr]
    threading.Event().wait(0.1)
    ours.update_lock(CONVERSATION)
    assert [t.number for t in ours.get_lock(CONVERSATION).tickets] == [live]  # type: ignore[union-attr]
    ours.cleanup(CONVERSATION, live)
    assert ours.red.exists("lock:" + CONVERSATION) == 0


def test_a_lock_written_by_the_stock_store_is_read_and_continued(ours: AtomicRedisLockStore, redis_url: str) -> None:
    """A rolling upgrade: locks the stock store wrote are understood."""
    stock = RedisLockStore(**_where(redis_url))  # type: ignore[arg-type]
    assert stock.issue_ticket(CONVERSATION, 60) == 0
    assert ours.issue_ticket(CONVERSATION, 60) == 1
    assert [t.number for t in stock.get_lock(CONVERSATION).tickets] == [0, 1]  # type: ignore[union-attr]


def test_endpoints_yml_creates_it(redis_url: str) -> None:
    where = _where(redis_url)
    config = EndpointConfig(url=str(where["host"]), type="bot.rasa_ext.lock_store.AtomicRedisLockStore",
                            port=where["port"], db=2, password="")
    assert isinstance(LockStore.create(config), AtomicRedisLockStore)
