"""Switching the conversation's language."""

from __future__ import annotations

import dataclasses
import re

from actions.common import BorrowerAction
from bot.dialogue.conversation import SlotChange, Turn

_ASKS_CHINESE = re.compile(r"中文|汉语|漢語|普通话|國語|国语|华语|chinese|mandarin|zhongwen", re.I)
_ASKS_ENGLISH = re.compile(r"英文|英语|english|eng\b", re.I)


def wanted_language(text: str, current: str) -> str:
    """The language the borrower asks for; the other one when they do not say."""
    if _ASKS_ENGLISH.search(text) and not _ASKS_CHINESE.search(text):
        return "en"
    if _ASKS_CHINESE.search(text) and not _ASKS_ENGLISH.search(text):
        return "zh"
    return "en" if current == "zh" else "zh"


class ActionSwitchLanguage(BorrowerAction):
    """Write every later message in the language the borrower asked for."""

    answers_questions = False

    def name(self) -> str:
        return "action_switch_language"

    async def act(self, turn: Turn) -> list[SlotChange]:
        language = wanted_language(turn.text, turn.language)
        await turn.services.records.set_language(turn.conversation_id, language)
        dataclasses.replace(turn, language=language).say("utter_language_switched")
        return [("language", language)]
