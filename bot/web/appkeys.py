"""The objects a gateway process shares between its webhooks and the pages mounted on its app."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from bot.contact.outbound import Sender
from bot.services import Services

SERVICES = web.AppKey("services", Services)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SENDER = web.AppKey("sender", Sender)
# Set when the server begins to stop: the background loops end then, not at cleanup (aiohttp waits for
# every task to finish before it cleans up, up to its 60 s shutdown timeout).
STOPPING = web.AppKey("stopping", asyncio.Event)
