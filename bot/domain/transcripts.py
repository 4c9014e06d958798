"""A conversation's transcript for agents, and what the console adds to it through Rasa's API.

The transcript is read from the tracker store's archive (every event ever, sealed;
see bot.rasa_ext.tracker_store), so it spans sessions and channels. What the console adds
(bot.web.rasa_client) goes through Rasa's API, so the transcript stays whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import keys
from bot.core.crypto import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One line of a transcript: ``who`` is borrower, bot, agent or system."""

    who: str
    text: str
    at: datetime
    agent: str | None = None
    channel: str | None = None


async def read(redis: Any, vault: Vault, conversation_id: str) -> list[Entry]:
    """Every message of the conversation, oldest first, with the moments agents took over and let go."""
    sealed = await redis.lrange(keys.tracker_archive(conversation_id), 0, -1)
    return [entry for entry in map(_entry, archived_events(vault, sealed)) if entry is not None]


def archived_events(vault: Vault, sealed: list[bytes]) -> list[dict[str, Any]]:
    """The events of an archive, oldest first. Each item holds the events one save added (a list), or
    one event (as the tracker store wrote them before it sealed a save's events together)."""
    events: list[dict[str, Any]] = []
    for item in sealed:
        opened = vault.open(item)
        events.extend(opened if isinstance(opened, list) else [opened])
    return events


def _entry(event: dict[str, Any]) -> Entry | None:
    at = datetime.fromtimestamp(float(event.get("timestamp") or 0), ZoneInfo("UTC"))
    metadata = event.get("metadata") or {}
    kind = event.get("event")
    text = event.get("text") or ""
    if kind == "user" and text and not text.startswith("/"):  # "/greet": a call's opening, not words
        return Entry("borrower", text, at, channel=metadata.get("channel") or event.get("input_channel"))
    if kind == "bot" and text:
        agent = metadata.get("agent")
        return Entry("agent" if agent else "bot", text, at, agent=agent)
    if kind in ("pause", "resume"):
        return Entry("system", kind, at)
    return None


def user_event(text: str, channel: str) -> dict[str, Any]:
    """A borrower's message recorded while an agent holds the conversation (no NLU, no reply)."""
    return {"event": "user", "text": text, "metadata": {"channel": channel},
            "parse_data": {"text": text, "intent": {}, "entities": []}}  # Rasa needs one; no intent: not parsed


def agent_event(text: str, agent: str) -> dict[str, Any]:
    """An agent's reply, marked as theirs."""
    return {"event": "bot", "text": text, "metadata": {"agent": agent}}


def bot_event(text: str) -> dict[str, Any]:
    """What the gateway itself answered (a STOP confirmation) while an agent held the conversation."""
    return {"event": "bot", "text": text}


def control_event(kind: str) -> dict[str, Any]:
    """``pause`` when an agent takes over, ``resume`` when the bot has it back."""
    return {"event": kind}


def forget_questions() -> list[dict[str, Any]]:
    """A question the bot asked before the agent took over is stale when it gets the conversation back."""
    return [{"event": "slot", "name": name, "value": None} for name in ("awaiting", "pending")]
