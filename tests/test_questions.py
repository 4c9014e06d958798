"""The values of the ``awaiting`` slot: each names one question and each question has its answer."""

from bot.dialogue import gate, questions

ASKED = {name: value for name, value in vars(questions).items() if name.isupper()}
# Answered outside the flows' table: by the gate itself (verification, the promise date) or by an action
# (affirm/deny to the hand-off offer, the clarifying question's number).
ANSWERED_ELSEWHERE = {questions.VERIFICATION, questions.PROMISE_DATE, questions.HANDOFF_OFFER, questions.MEANING}


def test_each_question_has_its_own_value() -> None:
    assert len(set(ASKED.values())) == len(ASKED)


def test_every_question_the_bot_can_ask_has_an_answer() -> None:
    assert set(ASKED.values()) == set(gate.QUESTIONS) | ANSWERED_ELSEWHERE


def test_every_flow_question_can_be_asked_again_after_a_side_question() -> None:
    assert set(gate.REASK) <= set(gate.QUESTIONS)
    assert set(gate.QUESTIONS) >= gate.YES_NO_QUESTIONS
