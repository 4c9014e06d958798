"""Events appended to a conversation's Rasa tracker through its HTTP API.

Messages that pass while an agent holds the conversation are appended with
``POST /conversations/<id>/tracker/events``, which records them without predicting a bot reply,
so the transcript (bot.domain.transcripts) stays whole. The events carry no timestamp: Rasa stamps
them under its lock, so the archive (which appends what is newer than its last event) never skips
one that raced another.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from bot.core.settings import Settings

log = logging.getLogger(__name__)


class TrackerUnavailable(Exception):
    """Rasa did not take the events; nothing was recorded."""


async def append(http: aiohttp.ClientSession, settings: Settings, conversation_id: str,
                 events: list[dict[str, Any]]) -> None:
    """Append events to the Rasa tracker (under Rasa's lock for the conversation).

    Raises:
        TrackerUnavailable: Rasa refused or did not answer.
    """
    url = f"{settings.rasa_for(conversation_id)[0]}/conversations/{conversation_id}/tracker/events"
    params = {"token": settings.rasa_token, "include_events": "NONE"}
    try:
        async with http.post(url, params=params, json=events) as response:
            if response.status != 200:
                log.error("rasa refused tracker events: HTTP %s (%s)", response.status, conversation_id)
                raise TrackerUnavailable
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.error("rasa unreachable for tracker events: %s (%s)", type(exc).__name__, conversation_id)
        raise TrackerUnavailable from exc
