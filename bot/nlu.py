"""NLU components of our own, named in config.yml."""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer


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
