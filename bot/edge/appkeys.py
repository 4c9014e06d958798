"""The objects a gateway process shares between its webhooks and the console."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

from bot.contact.outbound import Sender
from bot.edge.in_flight import Slots
from bot.services import Services

SERVICES = web.AppKey("services", Services)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SENDER = web.AppKey("sender", Sender)
PENDING: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("pending")
# Set to replay kept turns now (bot/domain/turns.py): Rasa just failed one, or one was queued behind it.
DRAIN = web.AppKey("drain", asyncio.Event)
# Set when the server begins to stop: the background loops end then, not at cleanup (aiohttp waits for
# every task to finish before it cleans up, up to its 60 s shutdown timeout).
STOPPING = web.AppKey("stopping", asyncio.Event)
# Turns each Rasa server is taking for this gateway now: a turn goes to the least busy one.
RASA_BUSY: web.AppKey[Counter[str]] = web.AppKey("rasa_busy")
# How many turns this gateway has inside Rasa at once (bot/edge/in_flight.py).
RASA_SLOTS = web.AppKey("rasa_slots", Slots)
