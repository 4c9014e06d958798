"""What our Rasa process changes in Rasa 3.6, applied when bot.rasa_ext.channel is loaded (credentials.yml),
before the agent is built. Each patch keeps Rasa's behaviour and says why it is here.

- No fail-safe tracker store. Rasa wraps every tracker store in FailSafeTrackerStore, which on a Redis
  error hands the processor no tracker, so the borrower silently starts a new conversation (and the
  save goes to memory). Without it a Redis error fails the turn, and our channel answers 503.
- The action server's answer checked with a compiled schema. Rasa checks every custom action's
  response with ``jsonschema.validate``, which first checks the schema itself against the JSON Schema
  meta-schema: profiled under load (py-spy, docs/benchmarks.md), that was three quarters of Rasa's CPU
  time per turn. The validator is now built once; the check and its error are the same.
- Event classes found by name from a table. Rasa walks every Event subclass (``all_subclasses``,
  with an ``isabstract`` test each) for every event it reads back from the tracker store: 9% of its
  CPU under load. The table is built from the same walk, on first use and again for a name it lacks.
- A failed custom action call fails the turn. Rasa catches every exception around an action, logs it
  and carries on without the action's events: with the action server down the bot said nothing and the
  turn was saved as taken. ``ActionServerFailed`` derives from BaseException so that it passes that
  ``except Exception``: the turn stops before the tracker is saved, and our channel answers 503 (the
  gateway keeps the message and replays it). A rejection (ActionExecutionRejection) is left to Rasa.
- The parse of common short replies remembered. Parsing is a third of a turn's CPU, and borrowers
  send "ok", "thanks", "好的", "yes" again and again; the parse of a message depends on its text
  alone (for a given model). Texts up to ``PARSE_CACHE_CHARS`` characters without digits (digits are
  dates and ID numbers: varied, and personal) are parsed once per loaded model and process; the last
  ``PARSE_CACHE_SIZE`` are kept, in memory only.
- Calls to the action server over kept-alive connections. Rasa opens a new aiohttp session, so a new
  TCP connection that the action server must accept, for every custom action it runs. The session of
  each endpoint is now kept per event loop; it is not closed after each call. Idle connections are
  dropped after ``KEEPALIVE_SECONDS``, before the action server (Sanic: 5 s) would close them. The
  request (the tracker) is written with ujson, as Sanic there reads it.
- The graph run in order without dask. Rasa hands every parse and prediction to ``dask.get`` (and
  first prunes the graph schema for the targets, each time): 8% of its CPU under load for graphs that
  are chains. The order for a set of targets is worked out once; each node then runs as dask ran it,
  with the outputs of the nodes it needs (a name nothing provides is passed as the name, as dask does).
- The intent classifier's input built from the sentence features alone. To classify one message,
  Rasa's LogisticRegressionClassifier deep-copies and joins every featurizer's sequence features too
  (which it then drops), and stacks an empty dense part and a one-row list with scipy: 7% of Rasa's
  CPU under load. The sentence features are now joined once, in the same order, into the same
  matrix; a message with dense features goes the stock way.
- Whether the domain is empty, worked out once per domain. Rasa asks it for every parsed message (to warn
  about unknown intents) by building an empty domain and comparing both as dicts: 5% of Rasa's CPU under
  load. A loaded model's domain does not change.
- The rule policy's conversation states worked out once per prediction. Right after a message, the
  RulePolicy looks for a rule twice (the message's text, then its intent), and each look turns the whole
  live tracker into states again; the two differ only in what each keeps of the last message, which the
  featurizer takes out of its own copy. Each look now gets a copy of the states made once.
- No copy of the tracker for an action that cannot change it. Before every action, Rasa replays the
  whole tracker into a copy, so that the policy's events can be dropped if the action is rejected (4% of
  its CPU under load). When the prediction brought no events and the action only reads the tracker (a
  custom action, which sends it to the action server, or action_listen), there is nothing to drop: the
  action is given the tracker itself.
- The rule policy's rules read once. Rasa keeps each rule as a JSON string and parses it again for every
  state of the conversation it is checked against, at every prediction. The parsed rule is now kept
  (the rules are the model's, and the parsed form is only read).
- The rules that match the conversation remembered. For every prediction the RulePolicy checks each rule
  (56 here) against the conversation's latest states, reversing the rule's states for each check: 5% of
  Rasa's CPU under load. A rule applies to any state older than itself, so which rules match depends
  on the rule set and the states back to the longest rule only (two here), and a conversation's last two
  states come from a small set: the answer is remembered for those (the last ``RULE_MATCH_CACHE_SIZE``).
- The classifier's weights laid out by column. scikit-learn multiplies the message's features by the
  transposed weights, which it first copies into row order (27 × 10,000 numbers, for every message): a
  prediction took 295 µs, 136 µs without the copy. Kept in column order once, the transpose needs no
  copy; the numbers and the arithmetic are the same.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import OrderedDict
from typing import Any

import aiohttp
import numpy as np
import ujson
from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import Action, ActionExecutionRejection, ActionListen, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
from rasa.core.featurizers.tracker_featurizers import TrackerFeaturizer
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import TrackerStore
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import EndpointConfig
from scipy import sparse

from bot.web import http_writes


def _tracker_store_without_fail_safe(store: TrackerStore | None, domain: Domain) -> TrackerStore:
    if store is None:
        raise ValueError("endpoints.yml must name a tracker store")
    store.domain = domain
    return store


@functools.cache
def _response_validator() -> Validator:
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once, not per turn
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    try:
        _response_validator().validate(result)
    except ValidationError as error:
        error.message += (". Failed to validate Action server response from API, make sure your response from the "
                          f"Action endpoint is valid. For more information about the format visit "
                          f"{DOCS_BASE_URL}/custom-actions")
        raise
    return True


_original_resolve_by_type = Event.resolve_by_type
_event_classes: dict[str, type[Event]] = {}


def _resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    if type_name not in _event_classes:
        _event_classes.update({cls.type_name: cls for cls in reversed(all_subclasses(Event))})
    found = _event_classes.get(type_name)
    return found if found is not None else _original_resolve_by_type(type_name, default)


class ActionServerFailed(BaseException):  # caught by bot.rasa_ext.channel, nowhere else
    """A custom action call failed; the turn must not be saved as taken (see the module's docstring)."""


_original_remote_run = RemoteAction.run


async def _run_or_fail_the_turn(self: RemoteAction, *args: Any, **kwargs: Any) -> list[Event]:
    try:
        return await _original_remote_run(self, *args, **kwargs)
    except ActionExecutionRejection:
        raise
    except RasaException as error:
        raise ActionServerFailed(self.name()) from error


PARSE_CACHE_CHARS = 24
PARSE_CACHE_SIZE = 2048
_original_parse_with_graph = MessageProcessor._parse_message_with_graph


def _parse_message_with_graph(self: MessageProcessor, message: UserMessage, tracker: DialogueStateTracker,
                              only_output_properties: bool = True) -> dict[str, Any]:
    text = message.text or ""
    if len(text) > PARSE_CACHE_CHARS or text.startswith("/") or any(c.isdigit() for c in text):
        return _original_parse_with_graph(self, message, tracker, only_output_properties)
    cache: OrderedDict[tuple[str, bool], dict[str, Any]] = self.__dict__.setdefault("_parse_cache", OrderedDict())
    key = (text, only_output_properties)
    if key in cache:
        cache.move_to_end(key)
    else:
        cache[key] = _original_parse_with_graph(self, message, tracker, only_output_properties)
        if len(cache) > PARSE_CACHE_SIZE:
            cache.popitem(last=False)
    return copy.deepcopy(cache[key])  # the caller adds to what it is given


KEEPALIVE_SECONDS = 4.0
_kept_sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}


class _KeptSession:
    """What ``async with endpoint.session()`` enters: the endpoint's kept session, left open at the end."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.session

    async def __aexit__(self, *exc_info: Any) -> None:
        return None


def _kept_session(self: EndpointConfig) -> _KeptSession:
    key = (asyncio.get_running_loop(), tuple(sorted(self.headers.items())), tuple(sorted(self.basic_auth.items())))
    session = _kept_sessions.get(key)
    if session is None or session.closed:
        session = _kept_sessions[key] = _new_session(self)
    return _KeptSession(session)


def _new_session(endpoint: EndpointConfig) -> aiohttp.ClientSession:
    """The session Rasa's ``EndpointConfig.session`` makes, with a keep-alive shorter than Sanic's."""
    auth = aiohttp.BasicAuth(endpoint.basic_auth["username"], endpoint.basic_auth["password"]) \
        if endpoint.basic_auth else None
    return aiohttp.ClientSession(headers=endpoint.headers, auth=auth,
                                 timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                                 connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
                                 json_serialize=ujson.dumps)  # the tracker, every call: 3 times faster than json


async def close_kept_sessions() -> None:
    """Close the sessions this event loop kept (the Rasa server stops)."""
    loop = asyncio.get_running_loop()
    for key in [key for key in _kept_sessions if key[0] is loop]:
        await _kept_sessions.pop(key).close()


_original_graph_run = DaskGraphRunner.run


def _run_in_order(self: DaskGraphRunner, inputs: dict[str, Any] | None = None,
                  targets: list[str] | None = None) -> dict[str, Any]:
    run_targets = targets if targets else self._graph_schema.target_names
    order = _order(self, tuple(run_targets))
    outputs = {name: (name, value) for name, value in (inputs or {}).items()}
    self._add_inputs_to_graph(inputs, dict.fromkeys(name for name, _ in order))  # refuses an input named as a node
    try:
        for name, needs in order:
            outputs[name] = self._instantiated_nodes[name](*(outputs.get(need, need) for need in needs))
    except RuntimeError as error:
        raise GraphRunError("Error running runner.") from error
    return dict(outputs[target] for target in run_targets)


def _order(runner: DaskGraphRunner, targets: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """The nodes the targets need, each after the nodes it needs, with the names of those."""
    orders: dict[tuple[str, ...], list[tuple[str, list[str]]]] = runner.__dict__.setdefault("_orders", {})
    if targets not in orders:
        nodes = runner._graph_schema.nodes
        order: list[tuple[str, list[str]]] = []
        placed: set[str] = set()

        def place(name: str) -> None:
            if name in placed or name not in nodes:
                return
            placed.add(name)
            needs = list(nodes[name].needs.values())
            for need in needs:
                place(need)
            order.append((name, needs))

        for target in targets:
            place(target)
        orders[targets] = order
    return orders[targets]


_original_create_x = LogisticRegressionClassifier._create_X


def _create_x(self: LogisticRegressionClassifier, messages: list[Message]) -> sparse.csr_matrix:
    rows = []
    for message in messages:
        text_features = [f for f in message.features if f.attribute == TEXT]
        sentence = [f.features for f in text_features if f.is_sparse() and f.type == FEATURE_TYPE_SENTENCE]
        if not sentence or any(f.is_dense() for f in text_features):
            return _original_create_x(self, messages)
        rows.append(sparse.hstack(sentence, format="csr") if len(sentence) > 1 else sparse.csr_matrix(sentence[0]))
    return rows[0] if len(rows) == 1 else sparse.vstack(rows, format="csr")


_original_is_empty = Domain.is_empty


def _is_empty_once(self: Domain) -> bool:
    if "_is_empty" not in self.__dict__:
        self.__dict__["_is_empty"] = _original_is_empty(self)
    return bool(self.__dict__["_is_empty"])


_original_rule_predict = RulePolicy._predict


def _predict_with_states_once(self: RulePolicy, tracker: DialogueStateTracker,
                              domain: Domain) -> tuple[Any, str | None]:
    featurizer: TrackerFeaturizer = self.featurizer
    made: dict[tuple[Any, ...], list[State]] = {}

    def states_once(of: DialogueStateTracker, in_domain: Domain, omit_unset_slots: bool = False,
                    ignore_rule_only_turns: bool = False, rule_only_data: dict[str, Any] | None = None) -> list[State]:
        only = tuple((name, tuple(values)) for name, values in sorted((rule_only_data or {}).items()))
        key = (id(of), id(in_domain), omit_unset_slots, ignore_rule_only_turns, rule_only_data is None, only)
        if key not in made:
            made[key] = TrackerFeaturizer._create_states(of, in_domain, omit_unset_slots, ignore_rule_only_turns,
                                                         rule_only_data)
        # The featurizer deletes from the last states' parts: each look gets parts of its own.
        return [{part: dict(values) for part, values in state.items()} for state in made[key]]

    featurizer._create_states = states_once  # type: ignore[method-assign]  # this prediction only (no await)
    try:
        return _original_rule_predict(self, tracker, domain)
    finally:
        del featurizer._create_states


_original_run_action = MessageProcessor._run_action


async def _run_action_on_the_tracker(self: MessageProcessor, action: Action, tracker: DialogueStateTracker,
                                     output_channel: Any, nlg: Any, prediction: Any) -> bool:
    if prediction.events or not isinstance(action, RemoteAction | ActionListen):
        return await _original_run_action(self, action, tracker, output_channel, nlg, prediction)

    def itself() -> DialogueStateTracker:  # Rasa's first copy, at once (no await before it); later ones real
        del tracker.copy  # type: ignore[method-assign]
        return tracker

    tracker.copy = itself  # type: ignore[method-assign]
    try:
        return await _original_run_action(self, action, tracker, output_channel, nlg, prediction)
    finally:
        tracker.__dict__.pop("copy", None)


_original_rule_key_to_state = RulePolicy._rule_key_to_state


@functools.lru_cache(maxsize=4096)
def _rule_key_to_state(rule_key: str) -> list[State]:
    return _original_rule_key_to_state(rule_key)


_original_get_possible_keys = RulePolicy._get_possible_keys
RULE_MATCH_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=4096)
def _rule_backwards(rule_key: str) -> tuple[State, ...]:
    """A rule's states, latest first (only read)."""
    return tuple(reversed(_rule_key_to_state(rule_key)))


def _rule_applies(rule_key: str, turn_index: int, conversation_state: State) -> bool:
    """Rasa's ``_is_rule_applicable``, on the rule's states reversed once rather than on every call."""
    rule_states = _rule_backwards(rule_key)
    if turn_index >= len(rule_states):
        return True
    current_previous_action = conversation_state.get(PREVIOUS_ACTION)
    rule_previous_action = rule_states[turn_index].get(PREVIOUS_ACTION)
    if not rule_previous_action and not current_previous_action:  # both start a conversation
        return True
    if not rule_previous_action or not current_previous_action:  # one does, the other not
        return False
    return bool(RulePolicy._does_rule_match_state(rule_states[turn_index], conversation_state))


@functools.lru_cache(maxsize=64)
def _longest_rule(rules: frozenset[str]) -> int:
    return max((len(_rule_backwards(key)) for key in rules), default=0)


def _rules_applying(rules: frozenset[str], latest_first: list[State]) -> frozenset[str]:
    possible_keys = set(rules)
    for i, state in enumerate(latest_first):
        possible_keys = {key for key in possible_keys if _rule_applies(key, i, state)}
    return frozenset(possible_keys)


@functools.lru_cache(maxsize=RULE_MATCH_CACHE_SIZE)
def _rules_applying_remembered(rules: frozenset[str],
                               latest_first: tuple[tuple[tuple[str, Any], ...], ...]) -> frozenset[str]:
    return _rules_applying(rules, [{part: dict(values) for part, values in state} for state in latest_first])


def _possible_keys_remembered(self: RulePolicy, lookup: dict[str, str], states: list[State]) -> set[str]:
    """Rasa's filter of the rules that match the conversation's states. A rule applies to any state older
    than itself, so the answer depends on the rules and the latest states back to the longest rule only:
    it is remembered for those (a conversation's last two states come from a small set)."""
    rules = frozenset(lookup)
    longest = _longest_rule(rules)
    latest_first = list(reversed(states[-longest:])) if longest else []
    try:
        frozen = tuple(tuple(sorted((part, tuple(sorted(values.items()))) for part, values in state.items()))
                       for state in latest_first)
        return set(_rules_applying_remembered(rules, frozen))
    except TypeError:  # a value that cannot be a key (Rasa's states hold strings, numbers and tuples)
        return set(_rules_applying(rules, latest_first))


_original_lr_process = LogisticRegressionClassifier.process


def _process_with_weights_by_column(self: LogisticRegressionClassifier, messages: list[Message]) -> list[Message]:
    if not self.clf.coef_.flags.f_contiguous:
        self.clf.coef_ = np.asfortranarray(self.clf.coef_)
    return _original_lr_process(self, messages)


http_writes.install()  # calls to the action server: headers and body in one write (bot/web/http_writes.py)
Agent._create_tracker_store = staticmethod(_tracker_store_without_fail_safe)  # type: ignore[method-assign]
RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
Event.resolve_by_type = staticmethod(_resolve_by_type)  # type: ignore[method-assign]
RemoteAction.run = _run_or_fail_the_turn  # type: ignore[method-assign]
MessageProcessor._parse_message_with_graph = _parse_message_with_graph  # type: ignore[method-assign]
EndpointConfig.session = _kept_session  # type: ignore[assignment]
DaskGraphRunner.run = _run_in_order  # type: ignore[method-assign]
LogisticRegressionClassifier._create_X = _create_x  # type: ignore[method-assign]
Domain.is_empty = _is_empty_once  # type: ignore[method-assign]
RulePolicy._predict = _predict_with_states_once  # type: ignore[method-assign]
MessageProcessor._run_action = _run_action_on_the_tracker  # type: ignore[method-assign]
RulePolicy._rule_key_to_state = staticmethod(_rule_key_to_state)  # type: ignore[method-assign, assignment]
RulePolicy._get_possible_keys = _possible_keys_remembered  # type: ignore[method-assign]
LogisticRegressionClassifier.process = _process_with_weights_by_column  # type: ignore[method-assign]
