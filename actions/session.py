"""Session start: language from the ledger, and who is writing."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import load_turn
from bot.catalog import render


class ActionSessionStart(Action):
    """Start a session in the borrower's language, introducing the bank's assistant."""

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        turn = await load_turn(dispatcher, tracker, domain)
        if turn is not None:
            language = await turn.services.records.language(turn.conversation_id) or turn.account.language
            settings = turn.services.settings
            events += [SlotSet("language", language), SlotSet("bank_phone", settings.bank_phone),
                       SlotSet("agent_hours", settings.agent_hours)]
            dispatcher.utter_message(text=render(domain.get("responses", {}), "utter_intro", language))
        return events + [ActionExecuted("action_listen")]

