"""The changes to Rasa 3.6 that must stay patches (Rasa has no extension point for them), installed by
``install()``: once per process, by the modules Rasa loads from our configuration (config.yml's
components, endpoints.yml's stores, credentials.yml's channel), so ``rasa run``, ``rasa train``,
``rasa test`` and ``rasa shell`` in this project all run with them. ``install()`` refuses to start when
Rasa's version or the code of a function it replaces is not the one these were written against.
docs/rasa-changes.md lists every difference from stock Rasa, why, since when, and its test.

- A failed call to the action server fails the turn. Rasa catches every exception around the predicted
  action, logs it and carries on without the action's events: with the action server down the bot said
  nothing and the turn was saved as taken. The predicted custom action now raises ``ActionServerFailed``
  (bot/rasa_ext/failures.py), which passes that ``except Exception``: the turn stops before the tracker
  is saved, and our channel answers 503. A rejection (ActionExecutionRejection) is left to Rasa, and so
  are the custom actions Rasa calls on its own (slot mappings, validation), which log and carry on.
- The action server's answer checked with a compiled schema. Rasa checks every custom action's response
  with ``jsonschema.validate``, which first checks the schema itself against the JSON Schema
  meta-schema: three quarters of Rasa's CPU time per turn under load (py-spy, docs/benchmarks.md). The
  validator is now built once; the check and its error are the same.
- Event classes found by name from a table. Rasa walks every Event subclass (``all_subclasses``, with
  an ``isabstract`` test each) for every event it reads back from the tracker store: 9% of its CPU
  under load. The table is built from the same walk, on first use and again for a name it lacks.
- The parse of common short replies remembered. Parsing is a third of a turn's CPU, and borrowers send
  "ok", "thanks", "好的", "yes" again and again; the parse of a message depends on its text alone (for a
  given model). Texts up to ``PARSE_CACHE_CHARS`` characters without digits (digits are dates and ID
  numbers: varied, and personal) are parsed once per loaded model and process; the last
  ``PARSE_CACHE_SIZE`` are kept, in memory only.
- Calls to the action server over kept-alive connections. Rasa opens a new aiohttp session, so a new
  TCP connection that the action server must accept, for every custom action it runs. The session of
  each endpoint is now kept per event loop; it is not closed after each call. Idle connections are
  dropped after ``KEEPALIVE_SECONDS``, before the action server (Sanic: 5 s) would close them. The
  request (the tracker) is written with ujson, as Sanic there reads it.
- The graph run in order without dask. Rasa hands every parse and prediction to ``dask.get`` (and first
  prunes the graph schema for the targets, each time): 8% of its CPU under load for graphs that are
  chains. The order for a set of targets is worked out once; each node then runs as dask ran it, with
  the outputs of the nodes it needs (a name nothing provides is passed as the name, as dask does).
- Whether the domain is empty, worked out once per domain. Rasa asks it for every parsed message (to
  warn about unknown intents) by building an empty domain and comparing both as dicts: 5% of Rasa's CPU
  under load. A loaded model's domain does not change.
- aiohttp's writes of a request's headers and body in one piece (bot/web/http_writes.py).

What is not here: the classifier and the rule policy are components of ours (bot/rasa_ext/nlu.py,
bot/rasa_ext/policies.py), and a Redis error fails the turn from inside our tracker store
(bot/rasa_ext/tracker_store.py) rather than by taking Rasa's fail-safe wrapper away.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import rasa
import ujson
from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import Action, ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import UserMessage
from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
from rasa.core.processor import MessageProcessor
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import EndpointConfig

from bot.core.code_digest import code_digest
from bot.rasa_ext.failures import ActionServerFailed
from bot.web import http_writes

RASA_VERSIONS = ("3.6.21",)  # the code digests below are 3.6.21's


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


_original_run_action = MessageProcessor._run_action


async def _run_action_or_fail_the_turn(self: MessageProcessor, action: Action, tracker: DialogueStateTracker,
                                       output_channel: Any, nlg: Any, prediction: Any) -> bool:
    if isinstance(action, RemoteAction):  # made for this prediction: its own run, not RemoteAction's
        action.run = functools.partial(_run_remote_or_fail, action)  # type: ignore[method-assign]
    return bool(await _original_run_action(self, action, tracker, output_channel, nlg, prediction))


async def _run_remote_or_fail(action: RemoteAction, *args: Any, **kwargs: Any) -> list[Event]:
    try:
        return await RemoteAction.run(action, *args, **kwargs)
    except ActionExecutionRejection:
        raise
    except RasaException as error:
        raise ActionServerFailed(action.name()) from error


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
                                 json_serialize=ujson.dumps)  # the tracker, every call (docs/benchmarks-changes.md)


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


_original_is_empty = Domain.is_empty


def _is_empty_once(self: Domain) -> bool:
    if "_is_empty" not in self.__dict__:
        self.__dict__["_is_empty"] = _original_is_empty(self)
    return bool(self.__dict__["_is_empty"])


@dataclass(frozen=True)
class Patch:
    """One of Rasa's functions and ours in its place; ``digest`` is of the code ours was written against."""

    owner: type
    name: str
    replacement: Any
    digest: str


PATCHES = (
    Patch(MessageProcessor, "_run_action", _run_action_or_fail_the_turn, "6d383d0179ef1187"),
    Patch(RemoteAction, "_validate_action_result", _validate_action_result, "f8cdb4be68123961"),
    Patch(Event, "resolve_by_type", staticmethod(_resolve_by_type), "b5cf570fa7f286c7"),
    Patch(MessageProcessor, "_parse_message_with_graph", _parse_message_with_graph, "0bd50a53b5c013af"),
    Patch(EndpointConfig, "session", _kept_session, "e55aa13d9d4fb4bc"),
    Patch(DaskGraphRunner, "run", _run_in_order, "45f0f52f574f3aa9"),
    Patch(Domain, "is_empty", _is_empty_once, "884be90ef485f1d2"),
)


class RasaChanged(RuntimeError):
    """The installed Rasa is not the one the patches were written against."""


def check(patches: tuple[Patch, ...] = PATCHES, version: str = rasa.__version__) -> None:
    """Raises RasaChanged unless Rasa's version and every replaced function's code are as expected."""
    if version not in RASA_VERSIONS:
        raise RasaChanged(f"Rasa {version} is installed; bot/rasa_ext/patches.py was written for "
                          f"{', '.join(RASA_VERSIONS)}: review each patch against the new code first")
    for patch in patches:
        stock = _stock.get((patch.owner, patch.name), patch.owner.__dict__.get(patch.name))
        if stock is None or code_digest(stock) != patch.digest:
            raise RasaChanged(f"{patch.owner.__qualname__}.{patch.name} is not the code bot/rasa_ext/patches.py "
                              f"replaces (digest {code_digest(stock) if stock else 'missing'}, expected "
                              f"{patch.digest}): review the patch against it first")


_installed = False
_stock: dict[tuple[type, str], Any] = {}  # what install() replaced


def install() -> None:
    """Check Rasa, then put every patch in place (once per process)."""
    global _installed
    if _installed:
        return
    check()
    http_writes.install()  # calls to the action server: headers and body in one write
    for patch in PATCHES:
        _stock[patch.owner, patch.name] = patch.owner.__dict__[patch.name]
        setattr(patch.owner, patch.name, patch.replacement)
    _installed = True
