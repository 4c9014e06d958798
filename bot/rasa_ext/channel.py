"""The channel the gateway speaks to Rasa through (credentials.yml: ``bot.rasa_ext.channel.GatewayInput``).

It is Rasa's REST channel with what the gateway needs to lose no borrower's message:

- A turn that was not taken whole is HTTP 503, never 200 with whatever was collected: Rasa's
  REST channel answers 200 even when the turn raised, so a failed turn looked like a silent bot.
  Not taken: the agent is still loading, or processing raised (Redis gone, say), or a custom action
  call failed (the action server down; bot/rasa_ext/patches.py stops such a turn before it is saved), or
  the tracker store could not read or write it (bot/rasa_ext/tracker_store.py): see bot/rasa_ext/failures.py.
- The gateway's id for the message (the MessageSid) becomes the tracker's ``message_id``.
- Nothing the borrower wrote is logged; the stock channel logs the text of a failed turn.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.core.heap import freeze_startup_heap
from bot.rasa_ext import patches
from bot.rasa_ext.failures import TurnNotTaken

log = logging.getLogger(__name__)

patches.install()  # before the agent is built


class GatewayInput(RestInput):
    """POST /webhooks/gateway/webhook {"sender", "message", "message_id", "metadata"} -> [messages] or 503."""

    @classmethod
    def name(cls) -> str:
        return "gateway"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("gateway_webhook", __name__)
        webhook.after_server_stop(lambda app, loop: patches.close_kept_sessions())
        webhook.after_server_start(lambda app, loop: freeze_startup_heap())  # the model is loaded before

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            payload = request.json if isinstance(request.json, dict) else {}
            sender, text = payload.get("sender"), payload.get("message")
            message_id, metadata = payload.get("message_id"), payload.get("metadata")
            if not isinstance(sender, str) or not sender or not isinstance(text, str) or not (
                    message_id is None or isinstance(message_id, str)):
                return response.json({"error": "sender and message are required strings"}, status=400)
            agent: Agent = request.app.ctx.agent
            if not agent.is_ready():
                return response.json({"error": "not ready, the turn was not taken"}, status=503)
            collector = CollectingOutputChannel()
            try:
                await on_new_message(UserMessage(text, collector, sender, input_channel=self.name(),
                                                 metadata=metadata if isinstance(metadata, dict) else None,
                                                 message_id=message_id))
            except (Exception, TurnNotTaken) as exc:  # noqa: BLE001 - the gateway keeps it
                log.error("turn failed (%s): %s", sender, type(exc).__name__)
                return response.json({"error": "the turn failed"}, status=503)
            return response.json(collector.messages)

        return webhook
