"""Training works in a process with our Rasa changes installed, as in our Rasa server (POST /model/train).

Finding of issue 19: the old patch of LogisticRegressionClassifier.process annotated ``self``, and Rasa's
graph validation then rejected every config with that classifier ("needs the param 'self'"); `rasa train`
only worked because it never loaded our channel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rasa.model_training import train
from rasa.shared.core.domain import InvalidDomain

from bot.rasa_ext import patches

CONFIG = {
    "recipe": "default.v1", "language": "en", "assistant_id": "tiny",
    "pipeline": [{"name": "WhitespaceTokenizer"}, {"name": "bot.rasa_ext.nlu.SentenceCountVectorsFeaturizer"},
                 {"name": "LogisticRegressionClassifier", "max_iter": 100},
                 {"name": "bot.rasa_ext.nlu.LinearIntentClassifier", "max_iter": 100}],
    "policies": [{"name": "bot.rasa_ext.policies.RememberingRulePolicy"}],
}
DOMAIN = {"version": "3.1", "intents": ["greet", "thank"], "responses": {"utter_hi": [{"text": "hi"}]}}
DATA = {"version": "3.1",
        "nlu": [{"intent": "greet", "examples": "- hello\n- hi there\n- good morning\n"},
                {"intent": "thank", "examples": "- thanks\n- thank you\n- cheers\n"}],
        "rules": [{"rule": "hi", "steps": [{"intent": "greet"}, {"action": "utter_hi"}]}]}


def test_a_model_with_the_stock_and_our_classifier_trains_with_our_changes_installed(tmp_path: Path) -> None:
    patches.install()
    for name, content in (("config.yml", CONFIG), ("domain.yml", DOMAIN), ("data.yml", DATA)):
        (tmp_path / name).write_text(yaml.safe_dump(content), encoding="utf-8")
    result = train(str(tmp_path / "domain.yml"), str(tmp_path / "config.yml"), [str(tmp_path / "data.yml")],
                   output=str(tmp_path / "models"), fixed_model_name="tiny")
    assert result.code == 0 and Path(str(result.model)).is_file()


def test_the_rule_policy_checks_its_fallback_action_against_the_domain(tmp_path: Path) -> None:
    """Rasa's validator checks only RulePolicy itself (by identity); ours checks when it trains."""
    patches.install()
    config = {**CONFIG, "policies": [{"name": "bot.rasa_ext.policies.RememberingRulePolicy",
                                      "core_fallback_action_name": "action_not_in_the_domain"}]}
    for name, content in (("config.yml", config), ("domain.yml", DOMAIN), ("data.yml", DATA)):
        (tmp_path / name).write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(InvalidDomain, match="action_not_in_the_domain"):
        train(str(tmp_path / "domain.yml"), str(tmp_path / "config.yml"), [str(tmp_path / "data.yml")],
              output=str(tmp_path / "models"), fixed_model_name="tiny")
