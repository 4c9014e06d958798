"""The rule policy, named in config.yml: Rasa's, with the work it repeats at every prediction done once.

Each change keeps Rasa's predictions (tests/integration/test_policy_patches.py compares them at every
step of every story, rule and conversation test):

- The conversation's states worked out once per prediction. Right after a message, RulePolicy looks
  for a rule twice (the message's text, then its intent), and each look turns the whole live tracker
  into states again; the two differ only in what each keeps of the last message, which the featurizer
  takes out of its own copy. Each look now gets a copy of the states made once.
- The rules read once. Rasa keeps each rule as a JSON string and parses it again for every state of the
  conversation it is checked against. The parsed rule is kept (the rules are the model's, only read).
- The rules that match the conversation remembered. For every prediction RulePolicy checks each rule
  (56 here) against the latest states, reversing the rule's states for each check: 5% of Rasa's CPU
  under load. A rule applies to any state older than itself, so which rules match depends on the rule
  set and the states back to the longest rule only (two here), and a conversation's last two states
  come from a small set: the answer is remembered for those (the last ``RULE_MATCH_CACHE_SIZE``).
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

from rasa.core.featurizers.tracker_featurizers import TrackerFeaturizer
from rasa.core.policies.memoization import TrackerWithCachedStates
from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_ext import patches

patches.install()  # rasa train, test and shell import this module: they run as our Rasa server does

RULE_MATCH_CACHE_SIZE = 4096

# Rasa's recipe validator looks for RulePolicy by identity (``node.uses == RulePolicy``), so it warns that a
# subclass "is not included" (restart and back work: the default rules are RulePolicy's, inherited) and
# skips its check of the fallback action against the domain, which train() below makes instead.
warnings.filterwarnings("ignore", message="'RulePolicy' is not included in the model's policy configuration")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class RememberingRulePolicy(RulePolicy):
    """Rasa's RulePolicy; states made once per prediction, rules parsed once, rule matches remembered."""

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Rasa's training, after the domain check its validator makes for RulePolicy itself only."""
        self.raise_if_incompatible_with_domain(self.config, domain)
        return super().train(training_trackers, domain, **kwargs)

    def _predict(self, tracker: DialogueStateTracker, domain: Domain) -> tuple[Any, str | None]:
        featurizer: TrackerFeaturizer = self.featurizer
        made: dict[tuple[Any, ...], list[State]] = {}

        def states_once(of: DialogueStateTracker, in_domain: Domain, omit_unset_slots: bool = False,
                        ignore_rule_only_turns: bool = False,
                        rule_only_data: dict[str, Any] | None = None) -> list[State]:
            only = tuple((name, tuple(values)) for name, values in sorted((rule_only_data or {}).items()))
            key = (id(of), id(in_domain), omit_unset_slots, ignore_rule_only_turns, rule_only_data is None, only)
            if key not in made:
                made[key] = TrackerFeaturizer._create_states(of, in_domain, omit_unset_slots,
                                                             ignore_rule_only_turns, rule_only_data)
            # The featurizer deletes from the last states' parts: each look gets parts of its own.
            return [{part: dict(values) for part, values in state.items()} for state in made[key]]

        featurizer._create_states = states_once  # type: ignore[method-assign]  # this prediction only (no await)
        try:
            return super()._predict(tracker, domain)
        finally:
            del featurizer._create_states

    @staticmethod
    def _rule_key_to_state(rule_key: str) -> list[State]:
        return _rule_states(rule_key)

    def _get_possible_keys(self, lookup: dict[str, str], states: list[State]) -> set[str]:
        """Rasa's filter of the rules that match the conversation's states, remembered for the latest
        states back to the longest rule."""
        rules = frozenset(lookup)
        longest = _longest_rule(rules)
        latest_first = list(reversed(states[-longest:])) if longest else []
        try:
            frozen = tuple(tuple(sorted((part, tuple(sorted(values.items()))) for part, values in state.items()))
                           for state in latest_first)
            return set(_rules_applying_remembered(rules, frozen))
        except TypeError:  # a value that cannot be a key (Rasa's states hold strings, numbers and tuples)
            return set(_rules_applying(rules, latest_first))


@functools.lru_cache(maxsize=4096)
def _rule_states(rule_key: str) -> list[State]:
    """A rule's states, oldest first, as RulePolicy keys them (shared: only read)."""
    return list(json.loads(rule_key))


@functools.lru_cache(maxsize=4096)
def _rule_backwards(rule_key: str) -> tuple[State, ...]:
    """A rule's states, latest first (only read)."""
    return tuple(reversed(_rule_states(rule_key)))


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
