"""Phone calls: Twilio's voice webhook in, TwiML out, the same Rasa dialogue behind.

Every answer is a <Gather input="speech dtmf"> in the caller's language with a
voice that exists for it, hints and a short speech timeout. Keys: 1 pay (the
link follows by SMS), 2 a person, 9 repeat; four digits answer the ID-card
question. Silence is reprompted twice, then the call ends politely and an SMS
follows. A machine gets a voicemail naming the bank and a number, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from twilio.twiml.voice_response import Gather, VoiceResponse

VOICES_FILE = Path(__file__).resolve().parent / "voices.yml"
MAX_REPROMPTS = 2
KEYPAD = {"1": "/pay_now", "2": "/request_human"}
REPEAT_KEY = "9"


@dataclass(frozen=True)
class Voice:
    """How one language is spoken and heard."""

    say_language: str
    voice: str
    gather_language: str
    hints: str


@cache
def voices() -> dict[str, Voice]:
    """Voices per conversation language, from voices.yml."""
    return {lang: Voice(**spec) for lang, spec in yaml.safe_load(VOICES_FILE.read_text(encoding="utf-8")).items()}


def voice_for(language: str) -> Voice:
    return voices().get(language) or voices()["en"]


def keyed(digits: str) -> str:
    """The keys a caller pressed, without the # that ends them."""
    return digits.strip().rstrip("#")


def caller_message(speech: str, digits: str, shortcuts: bool = True) -> str | None:
    """What the caller said or keyed, as a message for Rasa; None for "repeat" or nothing.

    Args:
        shortcuts: keys 1 and 2 mean "pay" and "a person"; not while the bot waits for
            the number of an option it listed.
    """
    digits = keyed(digits)
    if digits == REPEAT_KEY:
        return None
    if digits:
        # A Chinese ID card can end in X: the caller keys it as *.
        return (KEYPAD if shortcuts else {}).get(digits, digits.replace("*", "X"))
    return speech.strip() or None


def _say(target: Any, texts: list[str], voice: Voice) -> None:
    for text in texts:
        target.say(text, voice=voice.voice, language=voice.say_language)


def ask(texts: list[str], language: str, action: str, silences: int) -> str:
    """Say the texts inside a Gather; on silence, come back with one more silence counted."""
    voice = voice_for(language)
    response = VoiceResponse()
    gather = Gather(input="speech dtmf", action=action, method="POST", language=voice.gather_language,
                    hints=voice.hints, speech_timeout="auto", timeout=4)
    _say(gather, texts, voice)
    response.append(gather)
    response.redirect(f"{action}&silence={silences + 1}", method="POST")
    return str(response)


def finish(texts: list[str], language: str) -> str:
    """Say the texts and hang up."""
    response = VoiceResponse()
    _say(response, texts, voice_for(language))
    response.hangup()
    return str(response)


def transfer(texts: list[str], language: str, agent_phone: str) -> str:
    """Say the texts and connect the caller to the agents' number."""
    response = VoiceResponse()
    _say(response, texts, voice_for(language))
    response.dial(agent_phone)
    return str(response)
