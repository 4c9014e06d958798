"""bot/rasa_ext/patches.py: installed only on the Rasa it was written for; each patch keeps Rasa's answers
(only the cost differs) but for the one intended difference, a failed action call failing the turn."""

from __future__ import annotations

import socket
from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import ActionExecutionRejection, ActionExtractSlots, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_ext import patches as rasa_patches
from bot.rasa_ext.failures import ActionServerFailed

rasa_patches.install()

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


def test_without_a_tracker_store_rasa_keeps_its_in_memory_default() -> None:
    """Finding of issue 19: the old patch raised here (100-odd of Rasa's own agent tests failed on it)."""
    made = Agent._create_tracker_store(None, Domain.empty())
    assert isinstance(made, FailSafeTrackerStore) and isinstance(made._tracker_store, InMemoryTrackerStore)


def test_installed_on_the_rasa_it_was_written_for_and_every_patch_in_place() -> None:
    rasa_patches.check()  # on the stock functions install() replaced
    for patch in rasa_patches.PATCHES:
        assert patch.owner.__dict__[patch.name] is patch.replacement
    rasa_patches.install()  # a second time: nothing changes


def test_another_rasa_or_changed_code_refuses_to_start() -> None:
    with pytest.raises(rasa_patches.RasaChanged, match="Rasa 3.7.0 is installed"):
        rasa_patches.check(version="3.7.0")
    changed = rasa_patches.Patch(RulePolicy, "_predict", None, "0" * 16)
    with pytest.raises(rasa_patches.RasaChanged, match="RulePolicy._predict is not the code"):
        rasa_patches.check((changed,))
    missing = rasa_patches.Patch(RulePolicy, "no_such_function", None, "0" * 16)
    with pytest.raises(rasa_patches.RasaChanged, match="digest missing"):
        rasa_patches.check((missing,))


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


def _unreachable() -> EndpointConfig:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    return EndpointConfig(f"http://127.0.0.1:{port}/webhook")


async def test_the_predicted_action_failing_to_run_fails_the_turn() -> None:
    processor = MessageProcessor.__new__(MessageProcessor)  # _run_action reads only its domain before the call
    processor.domain = Domain.empty()
    tracker = DialogueStateTracker.from_events("c", [ActionExecuted("action_listen"), UserUttered("hi")])
    with pytest.raises(ActionServerFailed):
        await processor._run_action(RemoteAction("action_balance", _unreachable()), tracker,
                                    CollectingOutputChannel(), None, PolicyPrediction([1.0], "RulePolicy"))
    assert not issubclass(ActionServerFailed, Exception)  # Rasa's `except Exception` lets it by
    assert tracker.latest_action_name == "action_listen"  # nothing logged as taken


async def test_a_rejection_stays_rasas(monkeypatch: pytest.MonkeyPatch) -> None:
    async def rejects(*_: Any, **__: Any) -> list[Event]:
        raise ActionExecutionRejection("action_x")

    monkeypatch.setattr(RemoteAction, "run", rejects)
    with pytest.raises(ActionExecutionRejection):
        await rasa_patches._run_remote_or_fail(RemoteAction("action_x", None), None, None, None, None)


async def test_a_failing_slot_mapping_action_is_logged_and_the_turn_goes_on_as_in_rasa() -> None:
    """Finding of issue 19: the old patch let ActionServerFailed out of Rasa's slot extraction."""
    domain = Domain.from_dict({"actions": ["action_validate_slot_mappings"],
                               "slots": {"city": {"type": "text", "mappings": [{"type": "from_text"}]}}})
    tracker = DialogueStateTracker.from_events("c", [ActionExecuted("action_listen"), UserUttered("Paris")],
                                               slots=domain.slots)
    events = await ActionExtractSlots(_unreachable()).run(CollectingOutputChannel(), None, tracker, domain)
    assert events == [SlotSet("city", "Paris")]  # validation failed, so the extracted value stands (Rasa's way)


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


