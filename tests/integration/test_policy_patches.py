"""Our rule policy (bot/rasa_ext/policies.py) and Rasa patches (bot/rasa_ext/patches.py) predict as stock
Rasa does, on the trained model, at every step of every story, rule and conversation test (rules read
once, states made once, the rules matching the latest states remembered)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.core.agent import Agent
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.test import _create_data_generator
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_ext import patches as rasa_patches
from bot.rasa_ext.policies import RememberingRulePolicy

rasa_patches.install()

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "collections.tar.gz"  # built by `make test` before the tests run
CONVERSATIONS = [(ROOT / "data" / "stories", False), (ROOT / "data" / "rules", False),
                 (ROOT / "tests" / "test_stories.yml", True)]


def _before_each_action(agent: Agent) -> list[DialogueStateTracker]:
    """The conversation as it stood before each of its actions, for every story, rule and test."""
    domain = agent.domain
    assert domain is not None
    moments = []
    for path, are_tests in CONVERSATIONS:
        generator = _create_data_generator(str(path), agent, use_conversation_test_files=are_tests)
        for story in generator.generate_story_trackers():
            events = list(story.events)
            moments += [DialogueStateTracker.from_events(story.sender_id, events[:n], domain.slots)
                        for n, event in enumerate(events) if isinstance(event, ActionExecuted) and n > 0]
    return moments


def _predictions(policy: RememberingRulePolicy, domain: Domain, trackers: list[DialogueStateTracker]) -> list[tuple]:
    predicted = []
    for tracker in trackers:
        prediction, source = policy._predict(tracker, domain)
        predicted.append((prediction.probabilities, prediction.policy_name, prediction.events,
                          prediction.optional_events, prediction.is_end_to_end_prediction,
                          prediction.is_no_user_prediction, source))
    return predicted


def test_the_rule_policy_predicts_as_stock_rasa_with_its_states_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = Agent.load(str(MODEL), tracker_store=InMemoryTrackerStore(Domain.empty()))
    nodes = agent.processor.graph_runner._instantiated_nodes  # type: ignore[attr-defined]
    policy = nodes["run_bot.rasa_ext.policies.RememberingRulePolicy0"]._component
    trackers = _before_each_action(agent)
    assert len(trackers) > 150
    assert any(t.latest_action_name == "action_listen" for t in trackers)  # where the policy looks twice
    made: list[int] = []  # the times a tracker's states were worked out
    past_states = DialogueStateTracker.past_states
    monkeypatch.setattr(DialogueStateTracker, "past_states",
                        lambda *args, **kwargs: made.append(1) or past_states(*args, **kwargs))
    ours = _predictions(policy, agent.domain, trackers)
    ours_made, made[:] = len(made), []
    monkeypatch.setattr(RememberingRulePolicy, "_predict", RulePolicy._predict)
    monkeypatch.setattr(RememberingRulePolicy, "_rule_key_to_state", staticmethod(RulePolicy._rule_key_to_state))
    monkeypatch.setattr(RememberingRulePolicy, "_get_possible_keys", RulePolicy._get_possible_keys)
    stock = _predictions(policy, agent.domain, trackers)
    assert ours == stock
    assert ours_made == len(trackers) < len(made)  # once per prediction, where stock worked some out twice
    assert sum(1 for p in stock if max(p[0]) == 1.0) > len(stock) // 2  # mostly rule hits, not fallbacks


def test_the_domain_is_empty_as_stock_rasa_says() -> None:
    domain = Domain.load(str(ROOT / "domain.yml"))
    assert domain.is_empty() is rasa_patches._original_is_empty(domain) is False
    assert Domain.empty().is_empty() is rasa_patches._original_is_empty(Domain.empty()) is True
