"""The compacting tracker store: bounded live tracker, complete archive, state kept."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from cryptography.fernet import Fernet
from rasa.core.agent import Agent
from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_ext.failures import TrackerStoreUnavailable
from bot.rasa_ext.tracker_store import CompactRedisTrackerStore

DOMAIN = Domain.load("domain.yml")


@pytest.fixture
def store(redis_url: str) -> CompactRedisTrackerStore:
    url = urlparse(redis_url)
    store = CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), host=url.hostname, port=url.port,
                                     db=1, max_live_events=30, keep_events=12)
    store.red.flushdb()
    return store


def one_turn(tracker: DialogueStateTracker, n: int) -> None:
    tracker.update(UserUttered(f"message {n}", {"name": "greet", "confidence": 1.0}))
    tracker.update(ActionExecuted("action_greet"))
    tracker.update(SlotSet("awaiting", f"turn-{n}"))
    tracker.update(BotUttered(f"reply {n}"))
    tracker.update(ActionExecuted("action_listen"))


async def converse(store: CompactRedisTrackerStore, turns: int) -> DialogueStateTracker:
    for n in range(turns):
        tracker = await store.get_or_create_tracker("c_test", append_action_listen=True)
        if n == 0:
            tracker.update(SlotSet("language", "zh"))
        one_turn(tracker, n)
        await store.save(tracker)
    return await store.retrieve("c_test")


async def test_live_tracker_stays_bounded_and_keeps_state(store: CompactRedisTrackerStore) -> None:
    tracker = await converse(store, 50)
    assert len(tracker.events) <= 30 + 5
    assert tracker.get_slot("language") == "zh"
    assert tracker.get_slot("awaiting") == "turn-49"
    assert tracker.latest_message.text == "message 49"


async def test_archive_holds_every_event_once(store: CompactRedisTrackerStore) -> None:
    await converse(store, 50)
    full = await store.retrieve_full_tracker("c_test")
    texts = [e.text for e in full.events if isinstance(e, UserUttered)]
    assert texts == [f"message {n}" for n in range(50)]
    assert sum(isinstance(e, SlotSet) and e.key == "language" for e in full.events) == 1


async def test_a_tracker_saved_twice_or_from_elsewhere_archives_each_event_once(
        store: CompactRedisTrackerStore) -> None:
    tracker = await converse(store, 3)  # read from the store: it knows how far the archive goes
    one_turn(tracker, 3)
    await store.save(tracker)
    await store.save(tracker)  # again, nothing new
    outsider = DialogueStateTracker.from_events("c_test", list(tracker.events), slots=DOMAIN.slots)
    one_turn(outsider, 4)
    await store.save(outsider)  # built elsewhere: the stored record says how far the archive goes
    full = await store.retrieve_full_tracker("c_test")
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == [f"message {n}" for n in range(5)]


async def test_short_conversations_are_stored_as_they_are(store: CompactRedisTrackerStore) -> None:
    tracker = await converse(store, 3)
    full = await store.retrieve_full_tracker("c_test")
    assert [e.as_dict() for e in tracker.events] == [e.as_dict() for e in full.events]


async def test_each_save_is_one_archive_item_and_items_of_single_events_still_read(
        store: CompactRedisTrackerStore) -> None:
    archive = store.key_prefix + "archive:c_test"
    older = [UserUttered("written one event per item", {"name": "greet", "confidence": 1.0}, timestamp=1.0),
             ActionExecuted("action_listen", timestamp=2.0)]
    store.red.rpush(archive, *(store.vault.seal(e.as_dict()) for e in older))  # as the store wrote before
    await converse(store, 3)
    assert store.red.llen(archive) == 2 + 3  # then one item per turn
    full = await store.retrieve_full_tracker("c_test")
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == [
        "written one event per item", "message 0", "message 1", "message 2"]


async def test_a_new_tracker_is_stored_by_the_save_that_ends_its_turn(store: CompactRedisTrackerStore) -> None:
    tracker = await store.get_or_create_tracker("c_new", append_action_listen=False)
    assert store.red.keys("*c_new*") == []  # Rasa stores it empty at once
    one_turn(tracker, 0)
    await store.save(tracker)
    full = await store.retrieve_full_tracker("c_new")
    assert [e.as_dict() for e in full.events] == [e.as_dict() for e in tracker.events]
    assert [e.as_dict() for e in (await store.retrieve("c_new")).events] == [  # type: ignore[union-attr]
        e.as_dict() for e in tracker.events]


@pytest.mark.parametrize("slots_per_turn", [0, 2, 4, 6])
async def test_with_the_configured_sizes_the_last_message_stays_live(
        redis_url: str, slots_per_turn: int) -> None:
    """The actions compare the borrower's message with the one before (two fallbacks in a row hand
    the conversation to an agent): the live tracker keeps the last turn, however many events it has."""
    configured = yaml.safe_load(Path("endpoints.yml").read_text(encoding="utf-8"))["tracker_store"]
    url = urlparse(redis_url)
    store = CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), host=str(url.hostname), port=url.port or 0,
                                     db=1, max_live_events=configured["max_live_events"],
                                     keep_events=configured["keep_events"])
    store.red.flushdb()
    for n in range(30):
        tracker = await store.get_or_create_tracker("c_test", append_action_listen=True)
        tracker.update(UserUttered(f"message {n}", {"name": "greet", "confidence": 1.0}))
        tracker.update(ActionExecuted("action_greet"))
        for k in range(slots_per_turn):
            tracker.update(SlotSet("awaiting", f"turn-{n}-{k}"))
        tracker.update(BotUttered(f"reply {n}"))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)
        live = await store.retrieve("c_test")
        assert live is not None and live.latest_message.text == f"message {n}"
        assert len(live.events) <= configured["max_live_events"] + 5 + slots_per_turn


def test_keep_must_be_below_the_limit(redis_url: str) -> None:
    with pytest.raises(ValueError):
        CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), port=urlparse(redis_url).port,
                                 max_live_events=10, keep_events=10)


async def test_nothing_the_borrower_typed_is_stored_in_clear(store: CompactRedisTrackerStore) -> None:
    await converse(store, 40)
    for key in store.red.keys("*"):
        values = [store.red.get(key)] if store.red.type(key) == "string" else store.red.lrange(key, 0, -1)
        assert not any("message" in value for value in values)


async def test_a_redis_error_fails_the_turn_through_rasas_fail_safe_store() -> None:
    """Rasa wraps every store in FailSafeTrackerStore, which on an error returns no tracker (a new
    conversation) and saves to memory; ours raises past it, so the turn is not taken."""
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), host="127.0.0.1", port=port,
                                    socket_timeout=1)
    store = Agent._create_tracker_store(down, DOMAIN)
    assert isinstance(store, FailSafeTrackerStore)
    for call in (store.get_or_create_tracker("c"), store.save(DialogueStateTracker("c", DOMAIN.slots)),
                 store.retrieve_full_tracker("c"), store.keys()):
        with pytest.raises(TrackerStoreUnavailable):
            await call
    assert not list(await store.fallback_tracker_store.keys())  # nothing went to memory


async def test_a_record_the_keys_cannot_open_fails_the_turn(store: CompactRedisTrackerStore,
                                                            redis_url: str) -> None:
    tracker = await converse(store, 1)
    url = urlparse(redis_url)
    other_keys = CompactRedisTrackerStore(DOMAIN, Fernet.generate_key().decode(), host=url.hostname, port=url.port,
                                          db=1)
    with pytest.raises(TrackerStoreUnavailable):
        await other_keys.retrieve(tracker.sender_id)
