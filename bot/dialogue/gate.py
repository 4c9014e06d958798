"""What runs before every action: answers to our questions, verification, the gate.

The bot asks one question at a time and remembers which in the ``awaiting`` slot.
A reply is first offered to that question's handler; a handler returns None when
the message is not an answer (say, a request for a person), and the action the
message's intent names runs instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import date

from bot.dialogue import family, hardship, on_record, questions, visits
from bot.dialogue.conversation import (
    COMMITTING_INTENTS,
    DONE,
    HANDOFF_REASON_BY_INTENT,
    UNSURE,
    SlotChange,
    Turn,
    ask_promise_date,
    ask_to_confirm,
    ask_what_the_day_is_for,
    change_promise,
    changes_promise,
    coming_day,
    disclose_balance,
    hand_off,
    is_correction,
    mentions_payment,
    mentions_visit,
    promise_if_dated,
    promise_on,
    record_is_unclear,
    record_paid_claim,
    refuse_or_ask_verification,
    send_payment_link,
    someone_else_on_the_phone,
    speaker_is_someone_else,
    undo_last_record,
)
from bot.domain import verification
from bot.domain.consent import read_phone

# Intents whose message may be the birth date or ID digits we asked for.
VERIFICATION_ANSWER_INTENTS = {"inform", "promise_to_pay", "nlu_fallback", "affirm", "deny", "ask_balance",
                               "pay_now", "greet", "thank", "out_of_scope"}
# Intents whose message may be the date we asked for ("ok the 19th then" may read as thanks);
# "no, not tomorrow" is not one.
DATE_ANSWER_INTENTS = {"inform", "promise_to_pay", "nlu_fallback", "affirm", "thank", "pay_now"}
VISIT_INTENTS = {"book_visit", "reschedule_visit", "cancel_visit", "ask_visit_purpose"}
# The records confirmed when unclear (conversation.confirm_unclear_record), by the intent that asks for them.
RECORD_BY_INTENT = {"already_paid": "already_paid", "dispute_debt": "dispute"}


async def answer_date_meaning(turn: Turn) -> list[SlotChange] | None:
    """The answer to "is that day for paying or for the visit?"; None when it is neither."""
    if mentions_visit(turn.text) or turn.intent in ("book_visit", "reschedule_visit"):
        return await visits.start(turn, "book_visit")
    asked_about = date.fromisoformat(turn.pending or turn.today.isoformat())  # the day in the question
    if mentions_payment(turn.text) or turn.intent in ("promise_to_pay", "pay_now"):
        return await promise_on(turn, coming_day(turn) or asked_about)
    if turn.intent in ("affirm", "inform"):  # "yes" to an either-or question says neither: ask again
        return ask_what_the_day_is_for(turn, asked_about)
    return None


async def answer_record_confirm(turn: Turn) -> list[SlotChange] | None:
    """The answer to "just to be sure, do you mean …?" (``pending`` names the record): only a yes records it."""
    if turn.intent == "affirm":
        if turn.pending == "already_paid":
            return [*DONE, *await record_paid_claim(turn)]
        return await hand_off(turn, "dispute")
    if turn.intent == "deny":
        turn.say("utter_how_can_i_help")
        return list(DONE)
    return None


Handler = Callable[[Turn], Awaitable[list[SlotChange] | None]]
# The questions of the longer flows, each with the handler of its answer; all need a verified borrower.
QUESTIONS: dict[str, Handler] = {
    questions.HARDSHIP_REASON: hardship.answer_reason,
    questions.PLAN_CHOICE: hardship.answer_choice,
    questions.PLAN_CONFIRM: hardship.answer_confirm,
    questions.GRACE_CONFIRM: hardship.answer_grace,
    questions.VISIT_PLACE: visits.answer_place,
    questions.VISIT_ADDRESS_CONSENT: visits.answer_address_consent,
    questions.VISIT_ADDRESS: visits.answer_address,
    questions.VISIT_TIME: visits.answer_time,
    questions.VISIT_SLOT: visits.answer_slot,
    questions.FAMILY_CONSENT: family.answer_consent,
    questions.FAMILY_CONTACT: family.answer_contact,
    questions.DATE_MEANING: answer_date_meaning,
    questions.RECORD_CONFIRM: answer_record_confirm,
}


async def gate(turn: Turn, requires_verification: bool, answers_questions: bool) -> list[SlotChange] | None:
    """What the turn must do before the action's own work; None when the action may go on.

    Args:
        requires_verification: the action discloses account details.
        answers_questions: the message may answer what we asked (a birth date, a date to pay).
    """
    if turn.verified and not turn.locked and is_correction(turn):
        return await correct(turn)
    if turn.verified and not turn.locked and changes_promise(turn):
        return await change_promise(turn)
    if on_record.is_question(turn.text):
        if turn.verified and not turn.locked:
            return await on_record.tell(turn)
        return refuse_or_ask_verification(turn, "on_record")
    if answers_questions or reads_as_free_text_answer(turn):
        answered = await answer_pending_question(turn)
        if answered is not None:
            return answered
    dated = await dated_message(turn)
    if dated is not None:
        return dated
    if requires_verification and not turn.verified:
        return refuse_or_ask_verification(turn, pending_until_verified(turn))
    return None


def pending_until_verified(turn: Turn) -> str | None:
    """What to go on with once verified: the intent, or a question first when its record is unclear."""
    record = RECORD_BY_INTENT.get(turn.intent)
    if record and record_is_unclear(turn, record):
        return UNSURE + record
    return None


def reads_as_free_text_answer(turn: Turn) -> bool:
    """An address or a phone number typed where we asked for one, whatever the classifier made of it."""
    if turn.awaiting == questions.VISIT_ADDRESS:
        return visits.reads_as_address(turn.text)
    return turn.awaiting == questions.FAMILY_CONTACT and read_phone(turn.text) is not None


async def correct(turn: Turn) -> list[SlotChange]:
    """"No, I didn't say that": undo the last record, then do what the message asks instead, if it says."""
    changes = await undo_last_record(turn)
    if mentions_visit(turn.text):
        return changes + await visits.start(turn, "book_visit")
    return changes


async def dated_message(turn: Turn) -> list[SlotChange] | None:
    """A verified borrower names a coming day, unasked: a visit time, a payment day, or a question.

    Only a message that speaks of paying becomes a promise; one that speaks of a visit starts the visit
    flow; a bare day ("saturday morning") is asked about, never recorded as a promise.
    """
    if not turn.verified or turn.intent not in COMMITTING_INTENTS:
        return None
    day = coming_day(turn)
    if day is None:
        return None
    if mentions_visit(turn.text):
        return await visits.start(turn, "book_visit")
    if mentions_payment(turn.text) and turn.intent != "nlu_fallback":
        return await promise_on(turn, day)
    return ask_what_the_day_is_for(turn, day)


async def answer_pending_question(turn: Turn) -> list[SlotChange] | None:
    """Treat the message as the answer to what we asked, if it is one."""
    if (turn.awaiting == questions.VERIFICATION and turn.intent in VERIFICATION_ANSWER_INTENTS
            and verification.read_answer(turn.text).present):
        return await attempt_verification(turn)
    if turn.awaiting == questions.PROMISE_DATE and turn.verified and turn.intent in DATE_ANSWER_INTENTS:
        return await promise_if_dated(turn)
    handler = QUESTIONS.get(turn.awaiting or "")
    if handler is not None and turn.verified and not turn.locked:
        return await handler(turn)
    return None


# Questions asked in the middle of a flow ("are you a bot?" while choosing a plan): answered, then the
# flow's question is asked again and stays open. "How much do I owe?" keeps only the questions that a
# bare "ok" cannot answer: after the amount, an "ok" acknowledges it, it accepts no plan or consent.
SIDE_INTENTS = {"bot_challenge", "ask_visit_purpose"}
YES_NO_QUESTIONS = {questions.PLAN_CONFIRM, questions.GRACE_CONFIRM, questions.FAMILY_CONSENT,
                    questions.VISIT_ADDRESS_CONSENT, questions.RECORD_CONFIRM}
# The words that ask each flow question again.
REASK: dict[str, Callable[[Turn], str]] = {
    questions.HARDSHIP_REASON: lambda turn: "utter_ask_hardship_reason",
    questions.PLAN_CHOICE: lambda turn: "utter_ask_plan_choice",
    questions.PLAN_CONFIRM: lambda turn: "utter_ask_plan_confirm",
    questions.GRACE_CONFIRM: lambda turn: "utter_ask_grace_confirm",
    questions.FAMILY_CONSENT: lambda turn: "utter_ask_family_consent",
    questions.FAMILY_CONTACT: lambda turn: "utter_ask_family_contact",
    questions.VISIT_PLACE: lambda turn: "utter_ask_visit_place",
    questions.VISIT_ADDRESS_CONSENT: lambda turn: f"utter_ask_address_consent_{turn.pending or 'home'}",
    questions.VISIT_ADDRESS: lambda turn: f"utter_ask_visit_address_{turn.pending or 'home'}",
    questions.VISIT_TIME: lambda turn: "utter_ask_visit_time",
    questions.VISIT_SLOT: lambda turn: "utter_ask_visit_slot",
    questions.RECORD_CONFIRM: lambda turn: f"utter_ask_confirm_{turn.pending}",
}


def leave_question(turn: Turn, changes: list[SlotChange]) -> list[SlotChange]:
    """A message that did not answer the flow's question ends it: an "ok" turns later accepts nothing.

    A question of the borrower's own in between (SIDE_INTENTS) keeps the flow's question open, asked again.
    """
    if turn.awaiting in QUESTIONS and not any(slot == "awaiting" for slot, _ in changes):
        side = turn.intent in SIDE_INTENTS or (turn.intent == "ask_balance" and turn.awaiting not in YES_NO_QUESTIONS)
        if side and turn.awaiting in REASK:
            turn.say(REASK[turn.awaiting](turn))
            return changes
        return changes + list(DONE)
    return changes


async def attempt_verification(turn: Turn) -> list[SlotChange]:
    """Check the answer; disclose on success, offer a person after the last failure."""
    if turn.locked:
        turn.say("utter_cannot_discuss")
        return []
    if speaker_is_someone_else(turn.text):  # "我是她妈妈，她生日是…": the right answer from the wrong person
        return await someone_else_on_the_phone(turn)
    records = turn.services.records
    if not verification.matches(turn.account, verification.read_answer(turn.text)):
        if await records.verification_failed(turn.account.account_id) < verification.MAX_ATTEMPTS:
            turn.say("utter_verification_retry")
            return []
        turn.say("utter_verification_failed")
        return [("awaiting", questions.HANDOFF_OFFER), ("pending", None)]
    await records.verification_passed(turn.account.account_id)
    turn.say("utter_verified")
    changes: list[SlotChange] = [("verified_account", turn.account.account_id), ("awaiting", None),
                               ("pending", None)]
    verified = dataclasses.replace(turn, verified=True, awaiting=None, failures=0)
    return changes + await continue_after_verification(verified)


async def continue_after_verification(turn: Turn) -> list[SlotChange]:
    """Do what the borrower wanted before we asked who they were."""
    if (turn.pending or "").startswith("hardship:"):
        return await hardship.resume(turn, turn.pending or "")
    if turn.pending in VISIT_INTENTS:  # the message now is the verification answer, not a wish
        return await visits.start(dataclasses.replace(turn, text=""), turn.pending or "")
    disclose_balance(turn)
    if (turn.pending or "").startswith(UNSURE):
        return ask_to_confirm(turn, (turn.pending or "").removeprefix(UNSURE))
    if turn.pending == "on_record":
        return await on_record.tell(turn)
    if turn.pending == "pay_now":
        send_payment_link(turn)
        return []
    if turn.pending == "promise_to_pay":
        return ask_promise_date(turn)
    if turn.pending == "already_paid":
        return await record_paid_claim(turn)
    if turn.pending in HANDOFF_REASON_BY_INTENT:
        return await hand_off(turn, HANDOFF_REASON_BY_INTENT[turn.pending])
    turn.say("utter_options")
    return []
