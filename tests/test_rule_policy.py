"""bot/rasa_ext/policies.py: the rule policy finds the rules stock RulePolicy finds (the trained model's
predictions are compared at every step in tests/integration/test_policy_patches.py)."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.policies.rule_policy import RulePolicy

from bot.rasa_ext import policies
from bot.rasa_ext.policies import RememberingRulePolicy


def test_a_rule_is_read_as_rasa_reads_it_and_once() -> None:
    key = json.dumps([{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "pay"}}])
    assert RememberingRulePolicy._rule_key_to_state(key) == RulePolicy._rule_key_to_state(key)
    assert RememberingRulePolicy._rule_key_to_state(key) is RememberingRulePolicy._rule_key_to_state(key)


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
    stock = SimpleNamespace(_rule_key_to_state=RulePolicy._rule_key_to_state,
                            _does_rule_match_state=RulePolicy._does_rule_match_state)
    stock._is_rule_applicable = functools.partial(RulePolicy._is_rule_applicable, stock)
    return set(RulePolicy._get_possible_keys(stock, lookup, states))  # type: ignore[arg-type]


def _ours(lookup: dict[str, str], states: list[dict[str, Any]]) -> set[str]:
    return RememberingRulePolicy._get_possible_keys(None, lookup, states)  # type: ignore[arg-type]


@pytest.mark.parametrize("states", _CONVERSATIONS)
def test_the_rules_matching_a_conversation_are_those_stock_rasa_finds(states: list[dict[str, Any]]) -> None:
    stock = _stock_possible_keys(_RULES, states)
    assert _ours(_RULES, states) == stock
    assert _ours(_RULES, states) == stock  # remembered


def test_rules_are_remembered_per_rule_set_and_states() -> None:
    policies._rules_applying_remembered.cache_clear()
    for states in _CONVERSATIONS * 2:
        _ours(_RULES, states)
    assert policies._rules_applying_remembered.cache_info().hits == len(_CONVERSATIONS)
    fewer = dict(list(_RULES.items())[:1])
    assert _ours(fewer, _CONVERSATIONS[2]) == set(fewer)


def test_a_state_that_cannot_be_a_key_is_matched_the_stock_way() -> None:
    states = [{**_LISTEN, "user": {"intent": "pay"}, "slots": {"verified": [1.0]}}]  # a list: unhashable
    assert _ours(_RULES, states) == _stock_possible_keys(_RULES, states)
