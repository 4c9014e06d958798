"""Our Rasa patches that touch parsing (bot/rasa_ext/patches.py) and our NLU components (bot/rasa_ext/nlu.py)
classify as stock Rasa does, on the trained model and every held-out message of both languages."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.core.domain import Domain
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.rasa_ext import patches as rasa_patches
from bot.rasa_ext.nlu import LinearIntentClassifier, SentenceCountVectorsFeaturizer

rasa_patches.install()

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "collections.tar.gz"  # built by `make test` before the tests run


def _held_out_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "tests" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for line in block["examples"].splitlines():
                texts.append(re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", line.removeprefix("- ").strip()))
    return [text for text in texts if text]


def _parse_all(agent: Agent, texts: list[str]) -> list[dict[str, Any]]:
    # Below the parse cache: every text goes through the graph.
    return [rasa_patches._original_parse_with_graph(agent.processor, UserMessage(text), None)  # type: ignore[arg-type]
            for text in texts]


async def test_the_patched_graph_and_classifier_input_parse_as_stock_rasa(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = Agent.load(str(MODEL), tracker_store=InMemoryTrackerStore(Domain.empty()))
    texts = _held_out_texts()
    assert len(texts) > 400
    ours = _parse_all(agent, texts)
    monkeypatch.setattr(DaskGraphRunner, "run", rasa_patches._original_graph_run)
    [classifier] = [node._component for name, node in agent.processor.graph_runner._instantiated_nodes.items()
                    if name.startswith("run_bot.rasa_ext.nlu.LinearIntentClassifier")]
    assert isinstance(classifier, LinearIntentClassifier)
    assert classifier.clf.coef_.flags.f_contiguous  # laid out by column by our process
    monkeypatch.setattr(classifier, "process", functools.partial(LogisticRegressionClassifier.process, classifier))
    monkeypatch.setattr(classifier.clf, "coef_", np.ascontiguousarray(classifier.clf.coef_))  # as stock keeps them
    stock = _parse_all(agent, texts)
    for text, mine, theirs in zip(texts, ours, stock, strict=True):
        assert mine["intent"]["name"] == theirs["intent"]["name"], text
        assert [r["name"] for r in mine["intent_ranking"]] == [r["name"] for r in theirs["intent_ranking"]], text
        assert [r["confidence"] for r in mine["intent_ranking"]] == pytest.approx(
            [r["confidence"] for r in theirs["intent_ranking"]], abs=1e-9), text
        assert mine["entities"] == theirs["entities"], text


def test_our_count_vectors_featurizer_counts_as_stock_rasa_without_rows_per_token() -> None:
    agent = Agent.load(str(MODEL), tracker_store=InMemoryTrackerStore(Domain.empty()))
    nodes = agent.processor.graph_runner._instantiated_nodes
    tokenizer = nodes["run_JiebaTokenizer0"]._component
    featurizers = [node._component for name, node in nodes.items() if "SentenceCountVectorsFeaturizer" in name]
    assert len(featurizers) == 2 and all(isinstance(f, SentenceCountVectorsFeaturizer) for f in featurizers)
    messages = [Message(data={TEXT: text}) for text in _held_out_texts()]
    tokenizer.process(messages)
    for featurizer in featurizers:
        for message in messages:
            tokens = featurizer._get_processed_message_tokens_by_attribute(message, TEXT)
            ours_by_token, ours = featurizer._create_features(TEXT, [tokens])
            stock_by_token, stock = CountVectorsFeaturizer._create_features(featurizer, TEXT, [tokens])
            assert ours_by_token == [None] and stock_by_token[0] is not None
            assert (ours[0].tocsr() != stock[0].tocsr()).nnz == 0 and ours[0].shape == stock[0].shape, message.get(TEXT)
