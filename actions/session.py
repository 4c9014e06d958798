"""Session start: language from the ledger, and who is writing."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.core.catalog import render, responses
from bot.dialogue.conversation import load_turn
from bot.services import services


class ActionSessionStart(Action):
    """Start a session in the borrower's language, introducing the bank's assistant."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        turn = await load_turn(services(), tracker.sender_id, {}, tracker.latest_message, tracker.events)
        if turn is not None:
            language = turn.language  # the borrower's chosen language, else the ledger's
            settings = turn.services.settings
            events += [SlotSet("language", language), SlotSet("bank_phone", settings.bank_phone),
                       SlotSet("agent_hours", settings.agent_hours)]
            dispatcher.utter_message(text=render(responses(), "utter_intro", language))
        return events + [ActionExecuted("action_listen")]

