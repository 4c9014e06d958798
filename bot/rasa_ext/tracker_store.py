"""A Redis tracker store whose per-turn cost does not grow with the conversation.

Rasa's RedisTrackerStore reads, merges and rewrites the whole history on every
turn, and every policy and the action server then walk all of it: a turn at
message 200 costs several times a turn at message 1. This store keeps two keys
per conversation:

- ``tracker:<id>``: the live tracker, compacted once it passes
  ``max_live_events``: a fresh session start, the current slot values, then the
  last turns whole. Rules and actions only look back a turn or two.
- ``tracker:archive:<id>``: every event ever, appended once, for transcripts: an item per save,
  the events it added (bot.domain.transcripts.archived_events reads them).

Both are encrypted with the project's data keys: trackers hold what borrowers
typed, birth dates and ID digits included.

A Redis error (or a record it cannot open) fails the turn: Rasa wraps every
tracker store in a fail-safe one, which on an error hands the processor no
tracker, so the borrower would silently start a new conversation (and the save
would go to memory). This store raises ``TrackerStoreUnavailable``, which that
wrapper's ``except Exception`` lets by; our channel answers 503.

Used from endpoints.yml as ``type: bot.rasa_ext.tracker_store.CompactRedisTrackerStore``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot.core.crypto import Vault
from bot.domain.transcripts import archived_events
from bot.rasa_ext import patches
from bot.rasa_ext.failures import TrackerStoreUnavailable

log = logging.getLogger(__name__)

ACTION_LISTEN = "action_listen"
ARCHIVED_UNTIL = "_archived_until"  # set on a tracker read from this store: its newest archived event

patches.install()  # rasa run, shell and test load this module from endpoints.yml


class CompactRedisTrackerStore(RedisTrackerStore):
    """Redis tracker store with a bounded live tracker and an append-only archive."""

    def __init__(self, domain: Any, data_keys: str, host: str = "localhost", port: int | str = 6379,
                 db: int | str = 0, password: str | None = None, max_live_events: int = 80, keep_events: int = 40,
                 retention_days: int | str = 90, **kwargs: Any) -> None:
        kwargs.setdefault("record_exp", int(retention_days) * 86400)
        super().__init__(domain, host=host, port=int(port), db=int(db), password=password or None, **kwargs)
        if not 0 < keep_events < max_live_events:
            raise ValueError("keep_events must be above 0 and below max_live_events")
        self.vault = Vault(tuple(k.strip() for k in str(data_keys).split(",") if k.strip()))
        self.max_live_events = int(max_live_events)
        self.keep_events = int(keep_events)

    def _archive_key(self, sender_id: str) -> str:
        return self.key_prefix + "archive:" + sender_id

    async def create_tracker(self, sender_id: str, append_action_listen: bool = True) -> DialogueStateTracker:
        """A new tracker, stored by the save that ends the turn it was made for. Rasa stores it at once,
        empty: a write, a read and an encryption more on every conversation's first message, for a
        record the turn's save replaces."""
        tracker = self.init_tracker(sender_id)
        if append_action_listen:
            tracker.update(ActionExecuted(ACTION_LISTEN))
        setattr(tracker, ARCHIVED_UNTIL, 0.0)  # every event it will hold is new
        return tracker

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        try:
            return await super().retrieve(sender_id)
        except Exception as error:
            raise TrackerStoreUnavailable("retrieve") from error

    async def keys(self) -> Iterable[str]:
        try:
            return await super().keys()
        except Exception as error:
            raise TrackerStoreUnavailable("keys") from error

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        try:
            await self._save(tracker, timeout)
        except Exception as error:
            raise TrackerStoreUnavailable("save") from error

    async def _save(self, tracker: DialogueStateTracker, timeout: float | None) -> None:
        """Append the turn's new events to the archive and store the live tracker, in one transaction."""
        await self.stream_events(tracker)
        key = self.key_prefix + tracker.sender_id
        events = [event.as_dict() for event in tracker.events]
        archived_until = getattr(tracker, ARCHIVED_UNTIL, None)
        if archived_until is None:  # not read from here this turn (a new tracker, say): ask the stored one
            stored = self.red.get(key)
            archived_until = float(self.vault.open(stored).get("archived_until", 0.0)) if stored else 0.0
        new_events = [e for e in events if e.get("timestamp", 0) > archived_until]
        live = events if len(events) <= self.max_live_events else self._compact(tracker, events)
        record = {"name": tracker.sender_id, "events": live,
                  "archived_until": max([archived_until] + [e.get("timestamp", 0) for e in new_events])}
        expiry = timeout or self.record_exp
        pipe = self.red.pipeline(transaction=True)
        if new_events:  # sealed together: one encryption per turn, not one per event
            pipe.rpush(self._archive_key(tracker.sender_id), self.vault.seal(new_events))
        pipe.set(key, self.vault.seal(record), ex=expiry)
        if expiry:
            pipe.expire(self._archive_key(tracker.sender_id), int(expiry))
        pipe.execute()
        setattr(tracker, ARCHIVED_UNTIL, record["archived_until"])  # saved again, it archives only what is new

    def _compact(self, tracker: DialogueStateTracker, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A session start, the current slots, then the last whole turns: at least ``keep_events`` events,
        from the start of a turn (so the last turn stays whole, however long it was)."""
        start = len(events) - self.keep_events
        while start > 0 and not _is_listen(events[start - 1]):
            start -= 1
        if start == 0:
            return events
        tail = events[start:]
        at = float(tail[0].get("timestamp") or 0) - 0.001
        prefix: list[Event] = [ActionExecuted("action_session_start", timestamp=at), SessionStarted(timestamp=at)]
        prefix += [SlotSet(name, value, timestamp=at)
                   for name, value in tracker.current_slot_values().items() if value is not None]
        prefix.append(ActionExecuted(ACTION_LISTEN, timestamp=at))
        return [event.as_dict() for event in prefix] + tail

    def deserialise_tracker(self, sender_id: str, serialised_tracker: str | bytes) -> DialogueStateTracker | None:
        """Decrypt and rebuild the tracker as Rasa does; it remembers how far the archive goes, so that
        saving it at the end of the turn need not read and decrypt the stored one again."""
        record = self.vault.open(serialised_tracker)
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue.from_parameters(record))
        setattr(tracker, ARCHIVED_UNTIL, float(record.get("archived_until", 0.0)))
        return tracker

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """Every event of every session, from the archive."""
        try:
            return self._full_tracker(sender_id)
        except Exception as error:
            raise TrackerStoreUnavailable("retrieve_full_tracker") from error

    def _full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        events = archived_events(self.vault, self.red.lrange(self._archive_key(sender_id), 0, -1))
        if not events:
            return None
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(Dialogue.from_parameters({"name": sender_id, "events": events}))
        return tracker


def _is_listen(event: dict[str, Any]) -> bool:
    return event.get("event") == "action" and event.get("name") == ACTION_LISTEN

