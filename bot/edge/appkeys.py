"""The gateway's own objects on its app (the shared ones are in bot.web.appkeys)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from bot.edge.in_flight import Slots

PENDING: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("pending")
# Set to replay kept turns now (bot/domain/turns.py): Rasa just failed one, or one was queued behind it.
DRAIN = web.AppKey("drain", asyncio.Event)
# Turns each Rasa server is taking for this gateway now: a turn goes to the least busy one.
RASA_BUSY: web.AppKey[Counter[str]] = web.AppKey("rasa_busy")
# How many turns this gateway has inside Rasa at once (bot/edge/in_flight.py).
RASA_SLOTS = web.AppKey("rasa_slots", Slots)
