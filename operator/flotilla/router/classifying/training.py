"""Train a task head from labelled prompts (``flotilla classifier train``, ``scripts/build-classifier``).

The fit is scikit-learn's multinomial logistic regression (L-BFGS, deterministic for the same data), an
optional dependency (``pip install 'flotilla[train]'``): the router only needs the exported weights.
The temperature that calibrates the probabilities is chosen on out-of-fold predictions of a stratified
5-fold split, which also gives the accuracy and calibration error recorded in the asset.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flotilla import errors
from flotilla.router.classifying import chargrams, embedding, heads

REGULARISATION_C = 3.0
"""Inverse L2 strength, cross-validated on the train split (1, 3, 10, 30 tried)."""
CLASS_WEIGHT = "balanced"
"""Each task weighs the same in the fit whatever its row count: cross-validated on the train split, the
weakest task (writing) gains 9 points for the same overall accuracy (docs/routing.md)."""
FOLDS = 5
PREFIX_TOKENS = 32
"""Tokens whose in-context rows the second stage computes (~2 ms): cross-validated on the train split,
32 gave +1.8 points overall and +5 on writing over static rows alone; 64 gave no more."""
REFINE_TOLERANCE = 0.002
REFINE_GRID = np.round(np.arange(0.5, 1.0001, 0.025), 3)
MIN_ROWS_PER_TASK = 5
MIN_SOURCES = 3
MAX_TASK_NAME = 63
TEMPERATURES = np.round(np.arange(0.3, 3.01, 0.05), 2)


@dataclass(frozen=True, slots=True)
class Row:
    prompt: str
    task: str
    source: str = ""
    """Where the prompt comes from (optional): with three sources or more, the temperature is fitted on
    predictions for sources held out whole, so the scores stay calibrated on traffic unlike the data."""


def read_rows(path: Path) -> list[Row]:
    """Labelled rows of a JSONL file (``{"prompt": …, "task": …}``; other fields ignored).

    Raises ``UsageError`` naming the first bad line.
    """
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.UsageError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        prompt = item.get("prompt") if isinstance(item, dict) else None
        task = item.get("task") if isinstance(item, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise errors.UsageError(f'{path}:{number}: needs a non-empty "prompt" string')
        if not isinstance(task, str) or not task or len(task) > MAX_TASK_NAME:
            raise errors.UsageError(f'{path}:{number}: needs a "task" name (1-{MAX_TASK_NAME} characters)')
        source = item.get("source")
        rows.append(Row(prompt, task, source if isinstance(source, str) else ""))
    return rows


def data_sha256(rows: Iterable[Row]) -> str:
    """Hash of the training data as the head sees it: (task, prompt) pairs in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.task, row.prompt], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _version(rows: Sequence[Row], offsets: Mapping[str, float]) -> str:
    """The head's version: its data's hash, its offsets' and its character n-grams' settings (a head with
    them classifies differently from one trained on the same data without them)."""
    settings: dict[str, Any] = {"chars": chargrams.SETTINGS}
    if offsets:
        settings["offsets"] = dict(sorted(offsets.items()))
    return hashlib.sha256((data_sha256(rows) + json.dumps(settings)).encode()).hexdigest()[:12]


def _check_sizes(rows: Sequence[Row]) -> list[str]:
    counts = Counter(row.task for row in rows)
    if len(counts) < 2:
        raise errors.UsageError("training data needs at least two tasks")
    small = sorted(t for t, n in counts.items() if n < MIN_ROWS_PER_TASK)
    if small:
        raise errors.UsageError(
            f"task(s) {', '.join(small)} have fewer than {MIN_ROWS_PER_TASK} rows: label more prompts"
        )
    return sorted(counts)


@dataclass(frozen=True, slots=True)
class Idf:
    """Smoothed idf of the bag of tokens and of the character n-grams, from one set of training rows."""

    tokens: npt.NDArray[np.float32]
    chars: npt.NDArray[np.float32]


def _smoothed_idf(documents: npt.NDArray[np.float64], rows: int) -> npt.NDArray[np.float32]:
    return (np.log((1 + rows) / (1 + documents)) + 1).astype(np.float32)


def _csr(blocks: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]], width: int) -> Any:
    from scipy import sparse

    pointers = np.concatenate([[0], np.cumsum([len(columns) for columns, _ in blocks])])
    return sparse.csr_matrix(
        (np.concatenate([v for _, v in blocks]), np.concatenate([c for c, _ in blocks]), pointers),
        shape=(len(blocks), width),
    )


class Features:
    """The feature blocks of every row, computed once (tokenising is the slow part)."""

    def __init__(self, embedder: embedding.StaticEmbedder, prompts: Sequence[str]) -> None:
        self.vocabulary = embedder.vocabulary
        self.ids = [embedder.token_ids(p) for p in prompts]
        self.vectors = np.stack([embedder.features(i) for i in self.ids]) * heads.EMBEDDING_SCALE
        self.grams = [chargrams.counts(p) for p in prompts]

    def with_prefix(self, embedder: embedding.StaticEmbedder, prefix: int) -> Features:
        """The same rows with the second stage's embedding (in-context rows for the first tokens)."""
        other = copy.copy(self)
        other.vectors = np.stack([embedder.features(i, prefix) for i in self.ids]) * heads.EMBEDDING_SCALE
        return other

    def idf(self, rows: npt.NDArray[np.int64]) -> Idf:
        """Smoothed idf from the document counts of ``rows`` only (no peeking at held-out folds)."""
        tokens = np.zeros(self.vocabulary)
        chars = np.zeros(chargrams.BUCKETS)
        for i in rows:
            tokens[np.unique(self.ids[i][1:-1])] += 1
            chars[self.grams[i][0]] += 1
        return Idf(_smoothed_idf(tokens, len(rows)), _smoothed_idf(chars, len(rows)))

    def matrix(self, rows: npt.NDArray[np.int64], idf: Idf) -> Any:
        """Embedding, bag of tokens, opening words and character n-grams, side by side (the head's order)."""
        from scipy import sparse

        bag = _csr([heads.bag_of_tokens(self.ids[i], idf.tokens) for i in rows], self.vocabulary)
        opening = []
        for i in rows:
            columns, value = heads.opening_words(self.ids[i])
            opening.append((columns, np.full(columns.size, value, dtype=np.float32)))
        chars = [
            (columns, chargrams.weigh(columns, found, idf.chars))
            for columns, found in (self.grams[i] for i in rows)
        ]
        return sparse.hstack(
            [
                sparse.csr_matrix(self.vectors[rows]),
                bag,
                _csr(opening, self.vocabulary),
                _csr(chars, chargrams.BUCKETS),
            ]
        ).tocsr()


def _fit(features: Features, rows: npt.NDArray[np.int64], labels: npt.NDArray[np.str_], c: float) -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise errors.UsageError(
            "training needs scikit-learn: pip install 'flotilla[train]' (the router does not)"
        ) from None
    idf = features.idf(rows)
    model = LogisticRegression(C=c, max_iter=5000, class_weight=CLASS_WEIGHT)
    model.fit(features.matrix(rows, idf), labels[rows])
    return model, idf


def _per_class(model: Any) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One weight row and bias per class; a two-class model's single row becomes -z/2 and +z/2, whose
    softmax is the model's sigmoid."""
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = np.asarray(model.intercept_, dtype=np.float32)
    if coef.shape[0] == 1:
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    return coef, intercept


def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return probs


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE with equal-width bins: the mean |accuracy - confidence| weighted by bin size."""
    conf = np.asarray(confidence, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (conf > low) & (conf <= high)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - hits[inside].mean())
    return float(total)


@dataclass(frozen=True, slots=True)
class _Stage:
    """One fitted stage: weights, calibration and its out-of-fold probabilities."""

    classes: tuple[str, ...]
    weights: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    idf: Idf
    temperature: float
    logits: npt.NDArray[np.float64]
    """Out-of-fold logits of every row (stratified folds)."""
    calibration: npt.NDArray[np.float64]
    """Out-of-fold logits the temperature was fitted on (whole sources held out, when there are enough)."""

    @property
    def out_of_fold(self) -> npt.NDArray[np.float64]:
        return _softmax(self.logits / self.temperature)

    def head(self, dims: int, meta: dict[str, Any], refine: heads.Refinement | None = None) -> heads.Head:
        # the embedding, the bag of tokens, the opening words, the character n-grams
        vocabulary = (self.weights.shape[1] - dims - chargrams.BUCKETS) // 2
        opening_end = dims + 2 * vocabulary
        return heads.Head(
            classes=self.classes,
            embedding_weights=np.ascontiguousarray(self.weights[:, :dims]),
            bag_weights=np.ascontiguousarray(self.weights[:, dims : dims + vocabulary]),
            opening_weights=np.ascontiguousarray(self.weights[:, dims + vocabulary : opening_end]),
            bias=self.bias,
            idf=self.idf.tokens,
            temperature=self.temperature,
            meta=meta,
            refine=refine,
            char_weights=np.ascontiguousarray(self.weights[:, opening_end:]),
            char_idf=self.idf.chars,
        )


def _out_of_fold(features: Features, labels: npt.NDArray[np.str_], splits: Any, c: float) -> Any:
    classes = sorted(set(labels.tolist()))
    logits = np.zeros((len(labels), len(classes)))
    for train_rows, test_rows in splits:
        model, idf = _fit(features, train_rows, labels, c)
        weights, bias = _per_class(model)
        scores = features.matrix(test_rows, idf) @ weights.T + bias
        # a fold may lack a class: its column stays very unlikely
        logits[test_rows] = -30.0
        logits[np.ix_(test_rows, np.searchsorted(classes, model.classes_))] = scores
    return logits


def _stage(
    features: Features,
    labels: npt.NDArray[np.str_],
    folds: int,
    c: float,
    sources: npt.NDArray[np.str_],
    offset: npt.NDArray[np.float64],
) -> _Stage:
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    everything = np.arange(len(labels))
    classes = sorted(set(labels.tolist()))
    truth = np.searchsorted(classes, labels)
    stratified = StratifiedKFold(folds, shuffle=True, random_state=0).split(everything, labels)
    out_of_fold = _out_of_fold(features, labels, stratified, c) + offset
    calibration = out_of_fold
    groups = len(set(sources.tolist()))
    if groups >= MIN_SOURCES:
        by_source = GroupKFold(min(FOLDS, groups)).split(everything, labels, sources)
        calibration = _out_of_fold(features, labels, by_source, c) + offset
    temperature = _temperature(calibration, truth)
    model, idf = _fit(features, everything, labels, c)
    weights, bias = _per_class(model)
    bias = (bias + offset).astype(np.float32)
    return _Stage(
        tuple(str(x) for x in model.classes_), weights, bias, idf, temperature, out_of_fold, calibration
    )


def _temperature(logits: npt.NDArray[np.float64], truth: npt.NDArray[np.int64]) -> float:
    """The temperature that minimises the negative log-likelihood of ``truth``."""
    rows = np.arange(len(truth))
    losses = [-np.log(_softmax(logits / t)[rows, truth] + 1e-12).mean() for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def _scores(
    probs: npt.NDArray[np.float64], truth: npt.NDArray[np.int64], classes: Sequence[str]
) -> dict[str, Any]:
    predicted = probs.argmax(axis=1)
    return {
        "accuracy": round(float((predicted == truth).mean()), 4),
        "accuracy_per_task": {
            name: round(float((predicted[truth == i] == i).mean()), 4) for i, name in enumerate(classes)
        },
        "expected_calibration_error": round(
            expected_calibration_error(probs.max(axis=1), predicted == truth), 4
        ),
    }


def _refine_below(
    first: npt.NDArray[np.float64], second: npt.NDArray[np.float64], truth: npt.NDArray[np.int64]
) -> float:
    """The lowest first-stage confidence under which the second stage runs that keeps all but
    ``REFINE_TOLERANCE`` of the second stage's accuracy: the least compute for nearly all the gain."""
    target = float((second.argmax(axis=1) == truth).mean()) - REFINE_TOLERANCE
    for below in REFINE_GRID:
        cascade = np.where((first.max(axis=1) < below)[:, None], second, first)
        if float((cascade.argmax(axis=1) == truth).mean()) >= target:
            return float(below)
    return float(REFINE_GRID[-1])


def train(
    rows: Sequence[Row],
    embedder: embedding.StaticEmbedder,
    *,
    c: float = REGULARISATION_C,
    source: str = "",
    prefix: int = PREFIX_TOKENS,
    offsets: Mapping[str, float] | None = None,
) -> heads.Head:
    """A calibrated two-stage head for the tasks in ``rows`` (``prefix=0``: one stage).
    ``offsets`` shift tasks' logits (before calibration, in both stages). Deterministic for the same rows
    and embedding."""
    classes = _check_sizes(rows)
    offsets = dict(offsets or {})
    unknown = sorted(set(offsets) - set(classes))
    if unknown:
        raise errors.UsageError(f"offset for task(s) {', '.join(unknown)} not in the data")
    offset = np.array([float(offsets.get(name, 0.0)) for name in classes])
    labels = np.array([row.task for row in rows])
    truth = np.searchsorted(classes, labels)
    features = Features(embedder, [row.prompt for row in rows])
    folds = min(FOLDS, min(Counter(labels).values()))
    dims = features.vectors.shape[1]
    sources = np.array([row.source for row in rows])
    first = _stage(features, labels, folds, c, sources, offset)
    meta: dict[str, Any] = {
        "format": heads.HEAD_FORMAT,
        "version": _version(rows, offsets),
        "tasks": classes,
        "rows": len(rows),
        "rows_per_task": dict(sorted(Counter(labels.tolist()).items())),
        "data_sha256": data_sha256(rows),
        "data_source": source,
        "embedding": heads.embedding_id(embedder),
        "features": embedding.FEATURES,
        "opening": heads.OPENING,
        "chars": chargrams.SETTINGS,
        "regularisation_c": c,
        **({"offsets": dict(sorted(offsets.items()))} if offsets else {}),
        "temperature": first.temperature,
        "cross_validation": {"folds": folds, "first_stage": _scores(first.out_of_fold, truth, classes)},
    }
    refine = None
    if prefix > 0:
        second = _stage(features.with_prefix(embedder, prefix), labels, folds, c, sources, offset)
        below = _refine_below(first.out_of_fold, second.out_of_fold, truth)
        unsure = first.out_of_fold.max(axis=1) < below
        if unsure.sum() >= MIN_ROWS_PER_TASK:  # calibrate the second stage where it is used: unsure prompts
            second = dataclasses.replace(
                second, temperature=_temperature(second.logits[unsure], truth[unsure])
            )
        cascade = np.where(unsure[:, None], second.out_of_fold, first.out_of_fold)
        meta["refine"] = {"prefix_tokens": prefix, "below": below, "temperature": second.temperature}
        meta["cross_validation"].update(
            second_stage=_scores(second.out_of_fold, truth, classes),
            second_stage_share=round(float(unsure.mean()), 4),
        )
        refine = heads.Refinement(second.head(dims, {}), prefix, below)
        meta["cross_validation"].update(_scores(cascade, truth, classes))
    else:
        meta["cross_validation"].update(_scores(first.out_of_fold, truth, classes))
    return first.head(dims, meta, refine)
