"""The base every borrower-facing action shares; the conversation logic is in bot/conversation.py."""

from __future__ import annotations

import abc
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import catalog
from bot.conversation import SlotChange, Turn, load_turn
from bot.dialogue import gate, leave_question
from bot.services import services


class BorrowerAction(Action, abc.ABC):
    """Base for actions in a borrower's conversation.

    Subclasses implement ``act``; those that disclose account details set
    ``requires_verification`` and never run for an unverified borrower.
    Instances are shared by concurrent conversations: keep no state on them.
    """

    requires_verification = False
    answers_questions = True

    @abc.abstractmethod
    def name(self) -> str:
        """The action's name in the domain."""

    @abc.abstractmethod
    async def act(self, turn: Turn) -> list[SlotChange]:
        """Do the action's work for a borrower who passed the gate."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        turn = await load_turn(services(), tracker.sender_id, tracker.slots, tracker.latest_message, tracker.events)
        if turn is None:
            dispatcher.utter_message(response="utter_unknown_sender")
            return []
        changes = await gate(turn, self.requires_verification, self.answers_questions)
        if changes is None:
            changes = leave_question(turn, await self.act(turn))
        utter(dispatcher, turn)
        return [SlotSet(slot, value) for slot, value in changes]


def utter(dispatcher: CollectingDispatcher, turn: Turn) -> None:
    """Send what the turn said, each message rendered in the language it was said in.

    The words are domain.yml's, read by this process (Rasa does not send the domain with every call:
    endpoints.yml, enable_selective_domain). On a call, SMS to send and call actions (transfer, hang
    up) travel as custom payloads for the voice gateway.
    """
    responses = catalog.responses()
    for response, language, values in turn.said:
        dispatcher.utter_message(text=catalog.render(responses, response, language, turn.channel, **values))
    if turn.channel != "voice":
        return
    for response, language, values in turn.texts:
        dispatcher.utter_message(json_message={"sms": catalog.render(responses, response, language, **values)})
    for action in turn.call_actions:
        dispatcher.utter_message(json_message={"call": action})
