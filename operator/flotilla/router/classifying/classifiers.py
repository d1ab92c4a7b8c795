"""The classifier: a learned, calibrated head first; rules and example similarity for the fleet's own tasks.

The head (``heads.py``: multilingual embedding plus bag of tokens, trained on labelled prompts) gives a
probability to each of its classes (the packaged head: code, math, writing, general). Classes the fleet has
as tasks keep their probability; ``general`` and classes the fleet lacks go to the default task. The best task
wins when its probability reaches ``classifier.threshold``, otherwise the default task does (reason
``default``); the score is that calibrated probability.

Tasks the head does not know (``summarization``, a fleet's ``legal`` with keywords and examples) are found
by the rules-then-similarity stage: every task gets the weighted rule evidence of the user turns (earlier
turns at ``HISTORY_DECAY`` per step back); when no task has ``RULE_EVIDENCE_FLOOR`` of evidence, similarity
to each task's example centroid is added; an unknown task that wins that contest with confidence at least
the threshold takes the request (reason ``keyword:…``, ``pattern:…`` or ``embedding``). A fleet whose tasks
are all known to the head skips this stage.

"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router import presets
from flotilla.router.classifying import embedding, heads, overrides, rules, texts

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
HEAD_REASON = "classifier"


@dataclass(frozen=True, slots=True)
class Classification:
    """The task chosen for a request, the confidence in it (a probability, 0-1), why (``classifier``,
    ``keyword:…``, ``pattern:…``, ``embedding`` or ``default``) and every task's probability from the
    head (empty when no head decided)."""

    task: str
    score: float
    reason: str
    probabilities: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    rules: rules.TaskRules
    centroid: embedding.Vector | None
    known: bool
    """The head has a class for this task (or it is the default task)."""
    own_reasons: frozenset[str]
    """Reasons of the fleet's own keywords and patterns: the only rules that override the head for a known
    task (its preset rules still compete, so an unknown task must beat them)."""


class Classifier:
    """Classifies chat messages into one of a config's tasks. Built once per config; ``classify`` is cheap,
    synchronous and does no I/O, so it runs on the event loop."""

    __slots__ = (
        "_default_index",
        "_embedder",
        "_head",
        "_history_turns",
        "_targets",
        "_tasks",
        "_threshold",
        "_unknown_tasks",
        "_writing_index",
        "default_task",
        "version",
    )

    def __init__(
        self,
        tasks: Sequence[_Task],
        default_task: str,
        threshold: float,
        history_turns: int,
        embedder: embedding.StaticEmbedder | None,
        head: heads.Head | None,
    ) -> None:
        self._tasks = tuple(tasks)
        self.default_task = default_task
        self._default_index = next(i for i, t in enumerate(self._tasks) if t.name == default_task)
        self._threshold = threshold
        self._history_turns = history_turns
        self._embedder = embedder
        self._head = head if embedder is not None else None
        names = [t.name for t in self._tasks]
        # head class -> index of the fleet task that receives its probability
        self._targets = np.array(
            [names.index(c) if c in names else self._default_index for c in (head.classes if head else ())],
            dtype=np.int64,
        )
        # the rules stage runs only when some task has rules the head cannot stand in for
        self._unknown_tasks = self._head is None or any(
            not t.known or t.own_reasons for i, t in enumerate(self._tasks) if i != self._default_index
        )
        # high-precision writing requests override the head, for fleets with the head's writing task
        has_writing = (
            self._head is not None and overrides.TASK in self._head.classes and overrides.TASK in names
        )
        self._writing_index = names.index(overrides.TASK) if has_writing else -1
        self.version = str(head.meta.get("version", "?")) if head else "rules"

    @property
    def uses_embeddings(self) -> bool:
        return self._embedder is not None

    def classify(self, messages: Sequence[Mapping[str, Any]]) -> Classification:
        """The task for a request's messages (OpenAI chat format)."""
        turns = texts.user_turns(messages, self._history_turns)
        if not turns:
            return Classification(self.default_task, 1.0, DEFAULT_REASON)
        text = " \n".join(turns)
        ids = self._embedder.token_ids(text) if self._embedder is not None else None
        if self._unknown_tasks:
            found = self._by_rules(turns, ids)
            if found is not None:
                return found
        if self._head is None or self._embedder is None or ids is None:
            return Classification(self.default_task, 1.0, DEFAULT_REASON)
        probs = np.zeros(len(self._tasks), dtype=np.float64)
        np.add.at(probs, self._targets, self._head.predict(self._embedder, ids, text))
        best = int(probs.argmax())
        table = tuple((t.name, round(float(p), 4)) for t, p in zip(self._tasks, probs, strict=True))
        writing = self._writing_index
        undecided = best != writing or probs[best] < self._threshold
        if writing >= 0 and undecided and overrides.writing_request(turns[0]):
            score = max(overrides.SCORE, float(probs[writing]))
            if score >= self._threshold:
                return Classification(overrides.TASK, score, overrides.REASON, table)
        if best == self._default_index or probs[best] < self._threshold:
            return Classification(self.default_task, float(probs[self._default_index]), DEFAULT_REASON, table)
        return Classification(self._tasks[best].name, float(probs[best]), HEAD_REASON, table)

    def _by_rules(self, turns: list[str], ids: embedding.TokenIds | None) -> Classification | None:
        """The rules-then-similarity contest; a result only when a task the head does not know wins it
        (or, without a head, always)."""
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
        if self._embedder is not None and ids is not None and rule_peak < RULE_EVIDENCE_FLOOR:
            self._add_similarity(self._embedder.embed_ids(ids), logits, reasons)
        logits[self._default_index] += DEFAULT_PRIOR
        best_index = max(range(len(logits)), key=logits.__getitem__)
        runner_up = max((x for i, x in enumerate(logits) if i != best_index), default=0.0)
        confidence = _sigmoid(logits[best_index] - runner_up)
        if self._head is not None:
            winner = self._tasks[best_index]
            if best_index == self._default_index or confidence < self._threshold:
                return None
            if winner.known and reasons[best_index] not in winner.own_reasons:  # the head decides these
                return None
            return Classification(
                self._tasks[best_index].name, confidence, reasons[best_index] or EMBEDDING_REASON
            )
        if best_index == self._default_index:
            return Classification(self.default_task, confidence, DEFAULT_REASON)
        if confidence < self._threshold:
            return Classification(self.default_task, 1.0 - confidence, DEFAULT_REASON)
        return Classification(
            self._tasks[best_index].name, confidence, reasons[best_index] or EMBEDDING_REASON
        )

    def _add_similarity(self, query: embedding.Vector, logits: list[float], reasons: list[str]) -> None:
        sims = [float(query @ t.centroid) if t.centroid is not None else None for t in self._tasks]
        known = [s for s in sims if s is not None]
        if not known:
            return
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


def _head_class(route: routerconfig.TaskRoute, head: heads.Head | None) -> bool:
    return head is not None and route.name in head.classes


def build_classifier(
    config: routerconfig.RouterConfig,
    *,
    asset: Path | None = None,
    head: heads.Head | None = None,
    use_embeddings: bool = True,
) -> Classifier:
    """A classifier for ``config``'s tasks: ``head`` (default: the packaged one) plus rules and examples.

    Raises ``ConfigError`` for an unknown preset, an invalid pattern, an unloadable asset, or a head that
    does not fit the embedding. Without embeddings (``use_embeddings=False``) it classifies by rules only.
    """
    embedder: embedding.StaticEmbedder | None = None
    if use_embeddings:
        embedder = embedding.load(asset)
        if head is None:
            head = heads.load(heads.PACKAGED_HEAD)
        head.check_compatible(embedder)
    else:
        head = None
    tasks: list[_Task] = []
    for route in config.tasks:
        preset = _task_preset(route)
        known = route.name == config.default_task or _head_class(route, head)
        own = rules.user_rules(route.match.keywords, route.match.patterns)
        task_rules = (list(preset.rules) if preset else []) + own
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
        own_reasons = frozenset(rules.reason_of(rule) for rule in own)
        tasks.append(_Task(route.name, rules.TaskRules(route.name, task_rules), centroid, known, own_reasons))
    return Classifier(
        tasks,
        config.default_task,
        config.classifier.threshold,
        config.classifier.history_turns,
        embedder,
        head,
    )
