"""The learned task head: a calibrated linear model over a prompt's embedding, tokens and characters.

Four views of the prompt feed one multinomial logistic regression:

- the multilingual sentence features (``embedding.features``: the encoder's last hidden layer, scaled by
  ``EMBEDDING_SCALE``): what the prompt is about, in any language, including ones with few training rows;
- a sublinear tf-idf bag of the token ids, L2-normalised: the exact words that mark a task in the
  languages the training data has ("写一首", "関数", "Combien", "```"). Cross-validated on the train
  split, the two together beat either alone (docs/routing.md);
- a bag of the first ``OPENING_TOKENS`` tokens (binary, scaled to ``OPENING_WEIGHT``): the instruction
  usually comes first, so "请简要概括以下…" followed by a pasted news article is a summary (writing), not a
  question about the news. Cross-validated: +0.8 points overall, +1.5 on writing;
- a bag of hashed character bigrams and trigrams (``chargrams.py``): words the tokenizer cuts differently
  in different sentences, mostly Chinese ("写诗" / "写一首诗"). Cross-validated: +0.4 points overall, +1.1 on
  Chinese. Optional in a head file: heads trained before it have none and still load.

``probabilities`` is softmax(logits / temperature); the temperature is fitted on out-of-fold predictions
at training time, so the score is a calibrated probability. A head may carry a second stage
(``Refinement``): the same model over features whose first tokens see their context, consulted only
when the first stage's best probability is below ``below`` (cross-validated: about one prompt in ten pays
~3 ms for nearly all of the second stage's gain; ``predict``). The asset is one ``.npz`` file (no pickles):
small enough to serve from any URL, and tied to the embedding asset it was trained with by hash.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flotilla import errors
from flotilla.router.classifying import chargrams, embedding

HEAD_FORMAT = "flotilla-classifier/v1"
EMBEDDING_SCALE = 0.5
"""Weight of the embedding block against the unit-norm bag block (cross-validated: 0.5, 1 and 2 tried)."""
PACKAGED_HEAD = Path(__file__).parent / "assets" / "routing-head" / "classifier.npz"
"""The head shipped in the package: code, math, writing, general (built by ``scripts/build-classifier``)."""

OPENING_TOKENS = 16
OPENING_WEIGHT = 0.5
"""The opening-words bag: how many tokens, and its norm (cross-validated: 8-32 tokens, 0.3-1.0 tried)."""
OPENING = {"tokens": OPENING_TOKENS, "weight": OPENING_WEIGHT}
"""Recorded in a head: one trained with other opening-bag settings is refused."""
REFINE_PREFIX = "refine_"
Floats = npt.NDArray[np.float32]
CharCounts = tuple[npt.NDArray[np.int64], Floats]
"""A prompt's character n-gram columns and counts (``chargrams.counts``), computed once for both stages."""


def embedding_id(embedder: embedding.StaticEmbedder) -> str:
    """What a head records to prove it was trained on this embedding: the static rows' hash."""
    return str(embedder.meta.get("files_sha256", {}).get("static.npz", "unknown"))


def bag_of_tokens(ids: embedding.TokenIds, idf: Floats) -> tuple[npt.NDArray[np.int64], Floats]:
    """Token columns and their L2-normalised sublinear tf-idf values (sentence markers excluded)."""
    inner = ids[1:-1]
    if inner.size == 0:
        return inner, np.zeros(0, dtype=np.float32)
    columns, counts = np.unique(inner, return_counts=True)
    values = (1.0 + np.log(counts.astype(np.float32))) * idf[columns]
    norm = float(np.sqrt(values @ values))
    return columns, (values / norm if norm > 0 else values).astype(np.float32)


def opening_words(ids: embedding.TokenIds) -> tuple[npt.NDArray[np.int64], float]:
    """The distinct token columns among the first ``OPENING_TOKENS`` tokens, and the value each gets."""
    columns = np.unique(ids[1:-1][:OPENING_TOKENS])  # without the sentence markers
    return columns, OPENING_WEIGHT / float(np.sqrt(max(columns.size, 1)))


@dataclass(frozen=True, slots=True)
class Refinement:
    """The second stage: ``head`` over ``features(ids, prefix=prefix_tokens)``, used below ``below``."""

    head: Head
    prefix_tokens: int
    below: float


@dataclass(frozen=True, slots=True)
class Head:
    """A trained head. ``classes`` are task names; ``general`` stands for the fleet's default task."""

    classes: tuple[str, ...]
    embedding_weights: Floats  # classes x feature dimensions
    bag_weights: Floats  # classes x vocabulary
    opening_weights: Floats  # classes x vocabulary
    bias: Floats  # classes
    idf: Floats  # vocabulary
    temperature: float
    meta: dict[str, Any]
    refine: Refinement | None = None
    char_weights: Floats | None = None  # classes x chargrams.BUCKETS; None in heads trained without them
    char_idf: Floats | None = None  # chargrams.BUCKETS

    def predict(self, embedder: embedding.StaticEmbedder, ids: embedding.TokenIds, text: str = "") -> Floats:
        """Class probabilities: the first stage's, or the second stage's when the first is unsure.
        ``text`` is what ``ids`` tokenise (read by heads with character n-grams)."""
        grams = chargrams.counts(text) if self.char_weights is not None else None
        probs = self.probabilities(ids, embedder.features(ids), grams)
        refine = self.refine
        if refine is not None and float(probs.max()) < refine.below:
            probs = refine.head.probabilities(ids, embedder.features(ids, refine.prefix_tokens), grams)
        return probs

    def logits(self, ids: embedding.TokenIds, vector: Floats, grams: CharCounts | None = None) -> Floats:
        columns, values = bag_of_tokens(ids, self.idf)
        scores: Floats = self.embedding_weights @ (EMBEDDING_SCALE * vector) + self.bias
        if columns.size:
            scores = scores + self.bag_weights[:, columns] @ values
        opening, value = opening_words(ids)
        if opening.size:
            scores = scores + self.opening_weights[:, opening].sum(axis=1) * value
        chars, idf = self.char_weights, self.char_idf
        if chars is not None and idf is not None and grams is not None and grams[0].size:
            scores = scores + chars[:, grams[0]] @ chargrams.weigh(grams[0], grams[1], idf)
        return scores

    def probabilities(
        self, ids: embedding.TokenIds, vector: Floats, grams: CharCounts | None = None
    ) -> Floats:
        """Calibrated class probabilities (in ``classes`` order) for one prompt."""
        scaled = self.logits(ids, vector, grams) / self.temperature
        scaled = scaled - scaled.max()
        exp = np.exp(scaled)
        probs: Floats = (exp / exp.sum()).astype(np.float32)
        return probs

    def check_compatible(self, embedder: embedding.StaticEmbedder) -> None:
        """Raise ``ConfigError`` unless the head was trained on ``embedder``'s features."""
        wanted = self.meta.get("embedding"), self.meta.get("features"), self.meta.get("opening")
        have = embedding_id(embedder), embedding.FEATURES, OPENING
        chars = self.meta.get("chars", chargrams.SETTINGS)  # a head without n-grams reads none
        if wanted != have or chars != chargrams.SETTINGS:
            raise errors.ConfigError(
                f"classifier was trained on embedding {wanted[0]} ({wanted[1]}, opening words "
                f"{wanted[2]}, character n-grams {chars}), this router has {have[0]} ({have[1]}, {have[2]}, "
                f"{chargrams.SETTINGS}): retrain it with this version's `flotilla classifier train`"
            )
        if self.bag_weights.shape[1] != embedder.vocabulary or self.embedding_weights.shape[1] != (
            embedder.feature_dimensions
        ):
            raise errors.ConfigError("classifier weights do not match the embedding's shape")

    def _arrays(self, prefix: str = "") -> dict[str, Any]:
        arrays = {
            f"{prefix}embedding_weights": self.embedding_weights,
            f"{prefix}bag_weights": np.ascontiguousarray(self.bag_weights),  # the file's layout is C
            f"{prefix}opening_weights": np.ascontiguousarray(self.opening_weights),
            f"{prefix}bias": self.bias,
            f"{prefix}idf": self.idf,
            f"{prefix}temperature": np.array(self.temperature, dtype=np.float64),
        }
        if self.char_weights is not None and self.char_idf is not None:
            arrays[f"{prefix}char_weights"] = np.ascontiguousarray(self.char_weights)
            arrays[f"{prefix}char_idf"] = self.char_idf
        return arrays

    def to_bytes(self) -> bytes:
        arrays = {**self._arrays(), "classes": np.array(self.classes)}
        meta = dict(self.meta)
        if self.refine is not None:
            arrays.update(self.refine.head._arrays(REFINE_PREFIX))
            meta["refine"] = {
                **meta.get("refine", {}),
                "prefix_tokens": self.refine.prefix_tokens,
                "below": self.refine.below,
            }
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    def save(self, path: Path) -> str:
        """Write the head to ``path``; returns the file's sha256."""
        data = self.to_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()


def from_bytes(data: bytes, origin: str = "classifier") -> Head:
    """Parse a head file. Any malformed content raises ``ConfigError`` naming ``origin``."""
    if not data.startswith(b"PK\x03\x04"):  # not a zip: say so, rather than numpy's guess at its format
        raise errors.ConfigError(f"{origin} is not a valid classifier: not an .npz file")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
                raise ValueError(f"not a {HEAD_FORMAT} file")
            classes = tuple(str(c) for c in arrays["classes"])
            refine = None
            if "refine" in meta:
                settings = meta["refine"]
                second = _stage(arrays, classes, {}, REFINE_PREFIX)
                refine = Refinement(second, int(settings["prefix_tokens"]), float(settings["below"]))
            head = _stage(arrays, classes, meta, "", refine)
    except errors.ConfigError:
        raise
    except Exception as exc:  # zip, npz, JSON or key errors alike: the file is not a head
        raise errors.ConfigError(f"{origin} is not a valid classifier: {exc}") from exc
    rows = len(head.classes)
    if rows < 2 or len(set(head.classes)) != rows:
        raise errors.ConfigError(f"{origin}: needs at least two distinct task classes")
    for stage in (head, head.refine.head if head.refine else head):
        shapes_ok = (
            stage.embedding_weights.shape[0] == rows
            and stage.bag_weights.shape[0] == rows
            and stage.opening_weights.shape == stage.bag_weights.shape
            and stage.bias.shape == (rows,)
            and stage.idf.shape == (stage.bag_weights.shape[1],)
            and (stage.char_weights is None) == (head.char_weights is None)
            and (
                stage.char_weights is None
                or (
                    stage.char_weights.shape == (rows, chargrams.BUCKETS)
                    and stage.char_idf is not None
                    and stage.char_idf.shape == (chargrams.BUCKETS,)
                )
            )
        )
        if not shapes_ok or not stage.temperature > 0:
            raise errors.ConfigError(f"{origin}: inconsistent array shapes or temperature")
    if head.refine is not None and not 0 <= head.refine.prefix_tokens <= embedding.MAX_TOKENS:
        raise errors.ConfigError(f"{origin}: second-stage prefix out of range")
    return head


def _one_copy(array: Floats, other: Floats | None) -> Floats:
    """``other`` when it holds the same values: both stages are trained on the same rows, so their idf
    vectors are equal, and sharing them saves a router 1.5 MB."""
    return other if other is not None and np.array_equal(array, other) else array


def _stage(
    arrays: Any, classes: tuple[str, ...], meta: dict[str, Any], prefix: str, refine: Refinement | None = None
) -> Head:
    """One stage of a head file. The token and n-gram weights are held column-major (classes x columns,
    Fortran order): a prompt reads a few hundred scattered columns, and this way each one is 16 contiguous
    bytes, one cache line, instead of four lines 0.5-1 MB apart. In a busy router the lines are cold, so
    this is what the gather costs (bench/router/run.py, `auto` rows); the products are bit-identical."""
    chars = f"{prefix}char_weights" in arrays.files
    shared_idf, shared_char_idf = (refine.head.idf, refine.head.char_idf) if refine else (None, None)
    idf = _one_copy(arrays[f"{prefix}idf"].astype(np.float32), shared_idf)
    char_idf = _one_copy(arrays[f"{prefix}char_idf"].astype(np.float32), shared_char_idf) if chars else None
    return Head(
        classes=classes,
        embedding_weights=arrays[f"{prefix}embedding_weights"].astype(np.float32),
        bag_weights=arrays[f"{prefix}bag_weights"].astype(np.float32, order="F"),
        opening_weights=arrays[f"{prefix}opening_weights"].astype(np.float32, order="F"),
        bias=arrays[f"{prefix}bias"].astype(np.float32),
        idf=idf,
        temperature=float(arrays[f"{prefix}temperature"]),
        meta=meta,
        refine=refine,
        char_weights=arrays[f"{prefix}char_weights"].astype(np.float32, order="F") if chars else None,
        char_idf=char_idf,
    )


def load(path: Path) -> Head:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise errors.ConfigError(f"classifier {path} cannot be read: {exc.strerror}") from exc
    return from_bytes(data, str(path))


def check_covers(head: Head, tasks: list[str], default_task: str) -> None:
    """Raise ``ConfigError`` unless every non-default task of a fleet is one of the head's classes."""
    missing = [t for t in tasks if t != default_task and t not in head.classes]
    if missing:
        raise errors.ConfigError(
            f"classifier tasks {', '.join(head.classes)} do not cover the fleet's task(s) "
            f"{', '.join(missing)}"
        )
