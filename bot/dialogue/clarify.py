"""Asking what the borrower meant, when the classifier cannot tell or is unsure of a lasting record.

Rasa's FallbackClassifier marks a message it cannot place (top intent under its threshold, or the
first two within its ambiguity threshold) as ``nlu_fallback``; instead of "sorry, I didn't
understand" the bot then offers the one or two likeliest meanings it can name ("do you mean 1) a
payment plan, or 2) more time to pay?"). A message whose intent would stop contact or change what is
on record (wrong number, someone else's phone, stop contacting me, withdraw a consent, cancel a visit)
is confirmed first when the classifier is less than sure of it. The answer runs the chosen intent's
action as if the borrower had said it plainly; "no" records nothing. Rasa's two-stage fallback asks
the same kind of question, but as a form of its own that knows nothing of our verification gate or of
the flow's question pending; here the question is one more ``awaiting`` value.
"""

from __future__ import annotations

from bot.core import catalog
from bot.dialogue import questions
from bot.dialogue.choices import read_choice_number
from bot.dialogue.conversation import CLEAR_CONFIDENCE, DONE, SlotChange, Turn, words_say

# Intents confirmed when the classifier is unsure: each stops contact or changes a record at once.
GUARDED = {"stop_contact", "wrong_number", "third_party", "withdraw_consent", "cancel_visit"}
# An unplaced message is offered the likeliest meanings at or above this confidence.
OFFERED_CONFIDENCE = 0.2
# The meanings the bot can name in a question (domain.yml's utter_meaning_<intent>).
NAMEABLE = ("ask_balance", "pay_now", "already_paid", "promise_to_pay", "request_plan", "request_extension",
            "inform_hardship", "dispute_debt", "wrong_number", "third_party", "request_human", "stop_contact",
            "complain", "book_visit", "reschedule_visit", "cancel_visit", "ask_visit_purpose", "withdraw_consent")



def ask_if_unclear(turn: Turn) -> list[SlotChange] | None:
    """Ask what the message meant, if the action should not run on it as it is; None when it may."""
    if turn.intent == "nlu_fallback":
        meanings = [name for name, confidence in turn.ranking[:2]
                    if name in NAMEABLE and confidence >= OFFERED_CONFIDENCE]
        return ask(turn, meanings) if meanings else None
    if turn.intent in GUARDED and (turn.confidence < CLEAR_CONFIDENCE or not words_say(turn.intent, turn.text)):
        return ask(turn, [turn.intent])
    return None


def ask(turn: Turn, meanings: list[str]) -> list[SlotChange]:
    responses = catalog.responses()
    named = [catalog.render(responses, f"utter_meaning_{m}", turn.language, turn.channel) for m in meanings]
    if len(named) == 1:
        turn.say("utter_ask_meaning_one", first=named[0])
    else:
        turn.say("utter_ask_meaning_two", first=named[0], second=named[1])
    return [("awaiting", questions.MEANING), ("pending", "|".join(meanings))]


def chosen(turn: Turn) -> str | None:
    """The meaning the answer picks; "" for a no; None when the message does not answer the question."""
    if turn.awaiting != questions.MEANING or not turn.pending:
        return None
    meanings = turn.pending.split("|")
    number = read_choice_number(turn.text, len(meanings))
    if number:
        return meanings[number - 1]
    if turn.intent in meanings:
        return turn.intent
    if turn.intent == "affirm" and len(meanings) == 1:
        return meanings[0]
    if turn.intent == "deny":
        return ""
    return None


def answered_no(turn: Turn) -> list[SlotChange]:
    turn.say("utter_how_can_i_help")
    return list(DONE)
