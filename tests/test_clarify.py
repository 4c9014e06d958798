"""Asking what was meant: an unplaced message is offered its likeliest meanings, an unsure lasting
record is confirmed first, and the answer runs what was meant (bot/dialogue/clarify.py).

Through the real actions on the real Redis, with intents and confidences like the trained model's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import actions.arrangements  # noqa: F401 - the actions register the intents they serve
import actions.balance  # noqa: F401
import actions.identity  # noqa: F401
import actions.payment  # noqa: F401
from actions.common import BY_INTENT
from actions.handoff import ActionFallback
from actions.identity import ActionStopContact, ActionThirdParty, ActionWrongNumber
from bot.core import keys
from bot.dialogue import clarify
from bot.services import Services
from tests.test_flows import ACTIONS, Chat, _fixed_clock  # noqa: F401 - autouse: the clock of test_flows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ACTIONS, "nlu_fallback", ActionFallback)
    monkeypatch.setitem(ACTIONS, "stop_contact", ActionStopContact)
    monkeypatch.setitem(ACTIONS, "wrong_number", ActionWrongNumber)
    monkeypatch.setitem(ACTIONS, "third_party", ActionThirdParty)


def test_each_nameable_meaning_runs_the_action_its_rule_names() -> None:
    ruled = {}
    for path in (ROOT / "data" / "rules").glob("*.yml"):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            steps = rule["steps"]
            if len(steps) == 2 and "intent" in steps[0] and "action" in steps[1]:
                ruled[steps[0]["intent"]] = steps[1]["action"]
    for intent in clarify.NAMEABLE:
        assert BY_INTENT[intent]().name() == ruled[intent], intent


async def test_two_close_meanings_are_offered_and_the_number_chosen_runs(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("i need a payment plan", "nlu_fallback", 0.3,
                           (("request_extension", 0.51), ("request_plan", 0.47)))
    assert "1) more time to pay (a grace period), or 2) a payment plan (smaller monthly payments)?" in reply
    assert chat.awaiting == "meaning" and chat.slots["pending"] == "request_extension|request_plan"
    reply = await chat.say("2", "inform", 0.8)
    assert "what has made it hard to pay?" in reply and chat.awaiting == "hardship_reason"
    assert await services.arrangements.current("US001") is None  # offered, not accepted


async def test_an_unsure_stop_is_confirmed_before_contact_stops(services: Services) -> None:
    chat = Chat(services, "CN001")
    conversation = chat.sender
    reply = await chat.say("以后别这样了", "stop_contact", 0.41)
    assert "您是说让我们不再联系您吗" in reply
    assert not await services.records.is_opted_out(conversation)
    await chat.say("是的", "affirm", 0.97)
    assert await services.records.is_opted_out(conversation)


async def test_no_to_the_meaning_records_nothing(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    reply = await chat.say("not my problem anymore", "wrong_number", 0.38)
    assert "do you mean that this is the wrong number?" in reply
    reply = await chat.say("no", "deny", 0.95)
    assert "How can I help" in reply and chat.awaiting is None
    assert await services.redis.zscore(keys.REVIEW_NUMBERS, chat.sender) is None
    assert not await services.records.is_opted_out(chat.sender)


async def test_a_message_that_does_not_answer_drops_the_question_and_is_acted_on(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("not my problem anymore", "wrong_number", 0.38)
    reply = await chat.say("how much do i owe", "ask_balance", 0.93)
    assert "$824.74" in reply and chat.awaiting is None
    assert await services.redis.zscore(keys.REVIEW_NUMBERS, chat.sender) is None


async def test_a_clear_message_is_acted_on_without_a_question(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    await chat.say("wrong number, i dont know this person", "wrong_number", 0.92)
    assert await services.redis.zscore(keys.REVIEW_NUMBERS, chat.sender) is not None


async def test_an_unplaced_message_with_no_nameable_meaning_is_not_understood(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("asdf qwer", "nlu_fallback", 0.3, (("greet", 0.2), ("thank", 0.18)))
    assert "didn't understand" in reply and chat.awaiting is None


async def test_a_family_member_named_in_a_borrowers_story_is_not_a_third_party(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("I need a few more days, my husband lost his job", "third_party", 0.67)
    assert "do you mean that this phone is not the account holder's" in reply
    assert await services.redis.zscore(keys.REVIEW_NUMBERS, chat.sender) is None


async def test_the_right_birth_date_from_someone_else_discloses_nothing(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    await chat.say("how much does she owe", "ask_balance", 0.9)
    reply = await chat.say("this is her husband. her birthday is 07/04/1979", "inform", 0.81)
    assert "$" not in reply and chat.slots["verified_account"] is None
    assert await services.records.disclosure_blocked(chat.sender)


async def test_a_promise_said_with_stop_calling_is_recorded_with_the_opt_out(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("我周五还 别再打了行不行", "stop_contact", 0.9)
    assert await services.records.is_opted_out(chat.sender)
    assert (await services.records.get_promise("CN001"))["date"] == "2026-12-04"


async def test_refusing_to_verify_is_not_an_opt_out(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    reply = await chat.say("im not giving out my birthday over text", "stop_contact", 0.8)
    assert "do you mean that we stop contacting you?" in reply
    assert not await services.records.is_opted_out(chat.sender)


async def test_a_plain_stop_needs_no_question(services: Services) -> None:
    chat = Chat(services, "CN001", verified=False)
    await chat.say("别再给我打电话了", "stop_contact", 0.8)
    assert await services.records.is_opted_out(chat.sender)
