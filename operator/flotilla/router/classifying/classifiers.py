"""The classifier: rules first, then embedding similarity, turned into a confidence.

Every candidate task (the tasks of the config) gets a logit: the weighted rule evidence of the last user
turn (earlier user turns count at ``HISTORY_DECAY`` per step back). When no non-default task has at least
``RULE_EVIDENCE_FLOOR`` of rule evidence (the rules have nothing to say), the second stage embeds the text
and adds ``EMBEDDING_WEIGHT`` times how much closer it is to each task's example centroid than to the
average centroid. The default task also gets ``DEFAULT_PRIOR``: a prompt with no evidence is a default
prompt. The confidence is the sigmoid of the best logit's margin over the runner-up (so adding an unrelated
task does not dilute it, as a softmax would); the best task wins when its confidence reaches
``classifier.threshold``, otherwise the default task does, with reason ``default``.

The weights are set by hand (see docs/routing.md) rather than fitted: fitting them on the dev prompts learns
the dev prompts' sources, not the tasks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router import presets
from flotilla.router.classifying import embedding, rules, texts

log = logging.getLogger(__name__)

DEFAULT_PRIOR = 1.5
"""Logit head start of the default task: evidence must add up to more than this to leave it."""

HISTORY_DECAY = 0.5
"""Weight of an earlier user turn's rule evidence relative to the turn after it."""

RULE_EVIDENCE_FLOOR = 1.0
"""Below this much rule evidence for every non-default task, the embedding stage runs. Measured on the dev
set, adding similarity on top of firing rules only adds noise (docs/routing.md); tasks defined by examples
alone have no rule evidence, so they are always decided here."""

EMBEDDING_WEIGHT = 20.0
"""Logit per unit of cosine similarity above the mean over candidate tasks (cosines differ by ~0.05-0.3)."""

DEFAULT_REASON = "default"
EMBEDDING_REASON = "embedding"


@dataclass(frozen=True, slots=True)
class Classification:
    """The task chosen for a request, the confidence in it (0-1) and why (``keyword:…``, ``pattern:…``,
    ``embedding`` or ``default``)."""

    task: str
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    rules: rules.TaskRules
    centroid: embedding.Vector | None


class Classifier:
    """Classifies chat messages into one of a config's tasks. Built once per config; ``classify`` is cheap,
    synchronous and does no I/O, so it runs on the event loop."""

    __slots__ = ("_default_index", "_embedder", "_history_turns", "_tasks", "_threshold", "default_task")

    def __init__(
        self,
        tasks: Sequence[_Task],
        default_task: str,
        threshold: float,
        history_turns: int,
        embedder: embedding.StaticEmbedder | None,
    ) -> None:
        self._tasks = tuple(tasks)
        self.default_task = default_task
        self._default_index = next(i for i, t in enumerate(self._tasks) if t.name == default_task)
        self._threshold = threshold
        self._history_turns = history_turns
        self._embedder = embedder if any(t.centroid is not None for t in self._tasks) else None

    @property
    def uses_embeddings(self) -> bool:
        return self._embedder is not None

    def classify(self, messages: Sequence[Mapping[str, Any]]) -> Classification:
        """The task for a request's messages (OpenAI chat format)."""
        turns = texts.user_turns(messages, self._history_turns)
        if not turns:
            return Classification(self.default_task, 1.0, DEFAULT_REASON)
        logits = [0.0] * len(self._tasks)
        reasons = [""] * len(self._tasks)
        prepared = [rules.prepare(turn) for turn in turns]
        for i, task in enumerate(self._tasks):
            weight = 1.0
            best = 0.0
            for turn in prepared:
                found = task.rules.evidence(turn)
                logits[i] += weight * found.score
                if found.top and weight * found.score > best:
                    best, reasons[i] = weight * found.score, found.top
                weight *= HISTORY_DECAY
        rule_peak = max((x for i, x in enumerate(logits) if i != self._default_index), default=0.0)
        if self._embedder is not None and rule_peak < RULE_EVIDENCE_FLOOR:
            self._add_similarity(" \n".join(turns), logits, reasons)
        logits[self._default_index] += DEFAULT_PRIOR
        best_index = max(range(len(logits)), key=logits.__getitem__)
        runner_up = max((x for i, x in enumerate(logits) if i != best_index), default=0.0)
        confidence = _sigmoid(logits[best_index] - runner_up)
        if best_index == self._default_index:
            return Classification(self.default_task, confidence, DEFAULT_REASON)
        if confidence < self._threshold:
            return Classification(self.default_task, 1.0 - confidence, DEFAULT_REASON)
        return Classification(
            self._tasks[best_index].name, confidence, reasons[best_index] or EMBEDDING_REASON
        )

    def _add_similarity(self, text: str, logits: list[float], reasons: list[str]) -> None:
        assert self._embedder is not None
        query = self._embedder.embed(text)
        sims = [float(query @ t.centroid) if t.centroid is not None else None for t in self._tasks]
        known = [s for s in sims if s is not None]
        mean = sum(known) / len(known)
        for i, sim in enumerate(sims):
            if sim is None:
                continue
            bonus = EMBEDDING_WEIGHT * (sim - mean)
            logits[i] += bonus
            if bonus > logits[i] - bonus:  # the embedding outweighed the rules for this task
                reasons[i] = EMBEDDING_REASON


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def _task_preset(task: routerconfig.TaskRoute) -> presets.Preset | None:
    if task.preset is not None:
        preset = presets.get(task.preset)
        if preset is None:
            raise errors.ConfigError(
                f"task {task.name!r}: unknown preset {task.preset!r} (known: {', '.join(presets.PRESETS)})"
            )
        return preset
    return presets.get(task.name)


def build_classifier(
    config: routerconfig.RouterConfig, *, asset: Path | None = None, use_embeddings: bool = True
) -> Classifier:
    """A classifier for ``config``'s tasks. Loads (or reuses) the embedding asset and embeds the examples.

    A default task without examples is anchored by the ``chat`` preset's examples in the similarity stage.
    Raises ``ConfigError`` for an unknown preset or an invalid pattern. Without an embedding asset (none
    packaged and none given) the classifier uses rules only and says so in the log.
    """
    embedder: embedding.StaticEmbedder | None = None
    if use_embeddings:
        path = asset or embedding.PACKAGED_ASSET
        if asset is None and not (path / "meta.json").exists():
            log.warning("no embedding asset at %s: classifying by rules only", path)
        else:
            embedder = embedding.load(path)
    tasks: list[_Task] = []
    for route in config.tasks:
        preset = _task_preset(route)
        task_rules = list(preset.rules) if preset else []
        task_rules += rules.user_rules(route.match.keywords, route.match.patterns)
        examples = (list(preset.examples) if preset else []) + list(route.match.examples)
        if not examples and route.name == config.default_task:
            # Without an anchor the default could not win the similarity stage: whichever task is
            # relatively closest would always gain. General conversation is what a default usually gets.
            examples = list(presets.CHAT.examples)
        centroid = None
        if embedder is not None and examples:
            mean = embedder.embed_many(examples).mean(axis=0)
            norm = float(np.linalg.norm(mean))
            centroid = (mean / norm).astype(np.float32) if norm > 0 else None
        tasks.append(_Task(route.name, rules.TaskRules(route.name, task_rules), centroid))
    return Classifier(
        tasks, config.default_task, config.classifier.threshold, config.classifier.history_turns, embedder
    )
