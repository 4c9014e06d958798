"""The base every borrower-facing action shares; the conversation logic is in bot/dialogue/conversation.py."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.core import catalog
from bot.dialogue import clarify, questions
from bot.dialogue.conversation import DONE, SlotChange, Turn, load_turn
from bot.dialogue.gate import gate, leave_question
from bot.services import services

# The action each intent's rule runs (data/rules), for the meaning a borrower picks when asked.
BY_INTENT: dict[str, type[BorrowerAction]] = {}


class BorrowerAction(Action, abc.ABC):
    """Base for actions in a borrower's conversation.

    Subclasses implement ``act``; those that disclose account details set
    ``requires_verification`` and never run for an unverified borrower.
    Instances are shared by concurrent conversations: keep no state on them.
    """

    requires_verification = False
    answers_questions = True
    intents: ClassVar[tuple[str, ...]] = ()  # the intents whose rule runs this action

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BY_INTENT.update(dict.fromkeys(cls.intents, cls))

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
        changes = await self.respond(turn)
        utter(dispatcher, turn)
        return [SlotSet(slot, value) for slot, value in changes]

    async def respond(self, turn: Turn) -> list[SlotChange]:
        meant = clarify.chosen(turn)
        if meant is not None:
            return await run_meant(turn, meant)
        if turn.awaiting == questions.MEANING:  # not an answer: the question is dropped
            return [*DONE, *await self.respond(dataclasses.replace(turn, awaiting=None, pending=None))]
        changes = await gate(turn, self.requires_verification, self.answers_questions)
        if changes is not None:
            return changes
        asked = clarify.ask_if_unclear(turn)
        if asked is not None:
            return asked
        return leave_question(turn, await self.act(turn))


async def run_meant(turn: Turn, meant: str) -> list[SlotChange]:
    """Do what the borrower said they meant, as if they had said it plainly (nothing for a no)."""
    if not meant:
        return clarify.answered_no(turn)
    action = BY_INTENT[meant]()
    plain = dataclasses.replace(turn, intent=meant, confidence=1.0, text="", awaiting=None, pending=None)
    changes = await gate(plain, action.requires_verification, answers_questions=False)
    return [*DONE, *(changes if changes is not None else await action.act(plain))]


def utter(dispatcher: CollectingDispatcher, turn: Turn) -> None:
    """Send what the turn said, each message rendered in the language it was said in.

    The words are domain.yml's, read by this process (Rasa does not send the domain with every call:
    endpoints.yml, enable_selective_domain). On a call, SMS to send and call actions (transfer, hang
    up) travel as custom payloads for the voice gateway.
    """
    responses = catalog.responses()
    for response, language, values in turn.reply.said:
        dispatcher.utter_message(text=catalog.render(responses, response, language, turn.channel, **values))
    if turn.channel != "voice":
        return
    for response, language, values in turn.reply.texts:
        dispatcher.utter_message(json_message={"sms": catalog.render(responses, response, language, **values)})
    for action in turn.reply.call_actions:
        dispatcher.utter_message(json_message={"call": action})
