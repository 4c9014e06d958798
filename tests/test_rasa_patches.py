"""What bot/rasa_ext/patches.py changes in Rasa keeps Rasa's answers; only the cost differs."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import ActionListen, ActionRestart, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

from bot.rasa_ext import patches as rasa_patches

RESPONSES = [
    {"events": [{"event": "slot", "name": "language", "value": "zh"}], "responses": [{"text": "hi"}]},
    {"events": [], "responses": []},
    {},
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": [{"text": 3}]},
]


@pytest.mark.parametrize("response", RESPONSES)
def test_the_action_server_answer_is_judged_as_rasa_judges_it(response: dict[str, Any]) -> None:
    try:
        jsonschema.validate(response, RemoteAction.action_response_format_spec())
        valid = True
    except jsonschema.ValidationError:
        valid = False
    action = RemoteAction("action_x", None)
    if valid:
        assert action._validate_action_result(response) is True
    else:
        with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(response)


def test_every_event_class_is_found_by_its_name_as_before() -> None:
    for cls in all_subclasses(Event):
        assert Event.resolve_by_type(cls.type_name) is rasa_patches._original_resolve_by_type(cls.type_name)
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", UserUttered) is UserUttered
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")


def test_the_tracker_store_is_not_wrapped_in_a_fail_safe() -> None:
    store = InMemoryTrackerStore(Domain.empty())
    made = Agent._create_tracker_store(store, Domain.empty())
    assert made is store and not isinstance(made, FailSafeTrackerStore)


class _Processor:
    """Stands in for MessageProcessor: the cache lives on the processor of one loaded model."""


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []

    def parse(processor: Any, message: UserMessage, tracker: Any, only_output_properties: bool) -> dict[str, Any]:
        parsed.append(message.text or "")
        return {"text": message.text, "intent": {"name": "affirm"}, "entities": []}

    monkeypatch.setattr(rasa_patches, "_original_parse_with_graph", parse)
    return parsed


def _parse(processor: Any, text: str) -> dict[str, Any]:
    return rasa_patches._parse_message_with_graph(processor, UserMessage(text), None, True)  # type: ignore[arg-type]


def test_a_short_reply_is_parsed_once_and_each_caller_gets_its_own_copy(parses: list[str]) -> None:
    processor = _Processor()
    first = _parse(processor, "ok thanks")
    first["entities"].append("changed by the caller")
    assert _parse(processor, "ok thanks") == {"text": "ok thanks", "intent": {"name": "affirm"}, "entities": []}
    assert parses == ["ok thanks"]
    _parse(_Processor(), "ok thanks")  # another model: parsed again
    assert parses == ["ok thanks", "ok thanks"]


@pytest.mark.parametrize("text", ["my id ends 4421", "1985年3月12日", "/greet", "x" * 25])
def test_digits_commands_and_long_texts_are_always_parsed(parses: list[str], text: str) -> None:
    processor = _Processor()
    _parse(processor, text)
    _parse(processor, text)
    assert parses == [text, text]


def test_the_cache_keeps_only_the_most_recent_texts(parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasa_patches, "PARSE_CACHE_SIZE", 2)
    processor = _Processor()
    for text in ("ok", "yes", "ok", "thanks", "yes"):
        _parse(processor, text)
    assert parses == ["ok", "yes", "thanks", "yes"]  # "yes" was the oldest when "thanks" came


async def test_a_failed_action_call_stops_the_turn_but_a_rejection_is_rasas(monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.exceptions import RasaException

    async def down(*_: Any, **__: Any) -> list[Event]:
        raise RasaException("Failed to execute custom action 'action_x'. Couldn't connect to the server")

    async def rejects(*_: Any, **__: Any) -> list[Event]:
        raise ActionExecutionRejection("action_x")

    action = RemoteAction("action_x", None)
    monkeypatch.setattr(rasa_patches, "_original_remote_run", down)
    with pytest.raises(rasa_patches.ActionServerFailed):
        await action.run(None, None, None, None)  # type: ignore[arg-type]
    assert not issubclass(rasa_patches.ActionServerFailed, Exception)  # Rasa's `except Exception` lets it by
    monkeypatch.setattr(rasa_patches, "_original_remote_run", rejects)
    with pytest.raises(ActionExecutionRejection):
        await action.run(None, None, None, None)  # type: ignore[arg-type]


async def test_action_calls_share_one_kept_alive_connection_until_the_server_stops() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from rasa.utils.endpoints import EndpointConfig

    clients: list[int] = []

    async def webhook(request: web.Request) -> web.Response:
        clients.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return web.json_response({"events": [], "responses": [], "token": request.query.get("token"),
                                  "got": await request.json()})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    async with TestServer(app) as server:
        endpoint = EndpointConfig(str(server.make_url("/webhook")), token="secret")
        sent = {"next_action": "action_x", "tracker": {"events": [{"text": "下礼拜三 / 还钱", "timestamp": 1.0 / 3}]}}
        answers = [await endpoint.request(json=sent, method="post") for _ in range(3)]
        assert [answer["token"] for answer in answers] == ["secret"] * 3  # the endpoint's parameters still sent
        assert [answer["got"] for answer in answers] == [sent] * 3  # written with ujson, read as it was
        assert len(clients) == 3 and len(set(clients)) == 1  # stock Rasa: a new connection per call
        await rasa_patches.close_kept_sessions()
        await endpoint.request(json={}, method="post")
        assert len(set(clients)) == 2  # a closed session is replaced, not reused
        await rasa_patches.close_kept_sessions()


@pytest.mark.parametrize(("action", "policy_events", "itself"), [
    (RemoteAction("action_balance", None), [], True),
    (ActionListen(), [], True),
    (RemoteAction("action_balance", None), [SlotSet("language", "zh")], False),  # dropped if rejected: a copy
    (ActionRestart(), [], False),  # Rasa's own actions may change what they are given: a copy
])
async def test_an_action_that_only_reads_the_tracker_is_given_the_tracker_itself(
        monkeypatch: pytest.MonkeyPatch, action: Any, policy_events: list[Event], itself: bool) -> None:
    given: list[bool] = []

    async def run_action(processor: Any, action: Any, tracker: DialogueStateTracker, *args: Any) -> bool:
        given.append(tracker.copy() is tracker)  # what Rasa does first
        given.append(tracker.copy() is tracker)
        return False

    monkeypatch.setattr(rasa_patches, "_original_run_action", run_action)
    tracker = DialogueStateTracker.from_events("c", [ActionExecuted("action_listen"), UserUttered("hi")])
    prediction = PolicyPrediction([1.0], "RulePolicy", events=policy_events)
    await rasa_patches._run_action_on_the_tracker(None, action, tracker, None, None, prediction)  # type: ignore
    assert given == [itself, False]  # a later copy is a real one
    assert "copy" not in tracker.__dict__


# Rules as Rasa keys them (a JSON list of states, oldest first), and conversations' states (oldest first).
_LISTEN = {"prev_action": {"action_name": "action_listen"}}
_PAY = {**_LISTEN, "user": {"intent": "pay"}}
_RULES = {
    json.dumps([{**_LISTEN, "user": {"intent": "pay"}}]): "action_pay",
    json.dumps([{"prev_action": {"action_name": "action_ask"}, "user": {"intent": "pay"}},
                {**_LISTEN, "user": {"intent": "pay"}}]): "action_pay_after_asking",
    json.dumps([{}, {**_LISTEN, "user": {"intent": "greet"}}]): "action_greet_first",  # conversation start
    json.dumps([{**_LISTEN, "user": {"intent": "pay"}, "slots": {"verified": "should_not_be_set"}}]): "action_verify",
}
_CONVERSATIONS = [
    [{}, {**_LISTEN, "user": {"intent": "greet"}}],
    [{**_LISTEN, "user": {"intent": "greet"}}],
    [{"prev_action": {"action_name": "action_ask"}, "user": {"intent": "pay"}}, _PAY],
    [{"prev_action": {"action_name": "action_other"}, "user": {"intent": "pay"}}, _PAY],
    [{}, {"prev_action": {"action_name": "action_ask"}}, {**_PAY, "slots": {"verified": (1.0,)}}],
    [{**_LISTEN, "user": {"intent": "pay", "entities": ("amount",)}, "slots": {"verified": (0.0,)}}],
    [],
]


def _stock_possible_keys(lookup: dict[str, str], states: list[dict[str, Any]]) -> set[str]:
    stock = SimpleNamespace(_rule_key_to_state=rasa_patches._original_rule_key_to_state,
                            _does_rule_match_state=RulePolicy._does_rule_match_state)
    stock._is_rule_applicable = functools.partial(RulePolicy._is_rule_applicable, stock)
    return set(rasa_patches._original_get_possible_keys(stock, lookup, states))


@pytest.mark.parametrize("states", _CONVERSATIONS)
def test_the_rules_matching_a_conversation_are_those_stock_rasa_finds(states: list[dict[str, Any]]) -> None:
    stock = _stock_possible_keys(_RULES, states)
    assert rasa_patches._possible_keys_remembered(None, _RULES, states) == stock  # type: ignore[arg-type]
    assert rasa_patches._possible_keys_remembered(None, _RULES, states) == stock  # type: ignore[arg-type]  # remembered


def test_rules_are_remembered_per_rule_set_and_states() -> None:
    rasa_patches._rules_applying_remembered.cache_clear()
    for states in _CONVERSATIONS * 2:
        rasa_patches._possible_keys_remembered(None, _RULES, states)  # type: ignore[arg-type]
    assert rasa_patches._rules_applying_remembered.cache_info().hits == len(_CONVERSATIONS)
    fewer = dict(list(_RULES.items())[:1])
    assert rasa_patches._possible_keys_remembered(None, fewer, _CONVERSATIONS[2]) == set(fewer)  # type: ignore[arg-type]


def test_a_state_that_cannot_be_a_key_is_matched_the_stock_way() -> None:
    states = [{**_LISTEN, "user": {"intent": "pay"}, "slots": {"verified": [1.0]}}]  # a list: unhashable
    assert rasa_patches._possible_keys_remembered(None, _RULES, states) == _stock_possible_keys(_RULES, states)  # type: ignore[arg-type]
