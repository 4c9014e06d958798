"""What our Rasa process changes in Rasa 3.6, applied when bot.rasa_channel is loaded (credentials.yml),
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
"""

from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from typing import Any

from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import TrackerStore
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.shared.utils.common import all_subclasses


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


class ActionServerFailed(BaseException):  # caught by bot.rasa_channel, nowhere else
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


Agent._create_tracker_store = staticmethod(_tracker_store_without_fail_safe)  # type: ignore[method-assign]
RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
Event.resolve_by_type = staticmethod(_resolve_by_type)  # type: ignore[method-assign]
RemoteAction.run = _run_or_fail_the_turn  # type: ignore[method-assign]
MessageProcessor._parse_message_with_graph = _parse_message_with_graph  # type: ignore[method-assign]
