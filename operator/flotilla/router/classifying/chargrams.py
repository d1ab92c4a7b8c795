"""A bag of hashed character n-grams: the head's view of words the tokenizer splits differently.

SentencePiece cuts Chinese and Japanese into pieces that depend on their neighbours, so "写诗", "写一首诗"
and "诗写得" share few token ids, and an own prompt teaches little about a differently-cut real one.
Character bigrams and trigrams do not depend on the cut. Cross-validated on the train split (docs/routing.md,
5 folds, permissive + own rows -> all rows of the fold), adding them to both stages raised accuracy from
0.866 to 0.870, Chinese from 0.821 to 0.832 and general from 0.809 to 0.821 (weight 1.0; 0.5 gained nothing,
2^16 buckets less, CJK-only n-grams nothing).

The n-grams are hashed into ``BUCKETS`` columns with a fixed multiplicative hash over the lower-cased text's
code points, vectorised in numpy (no per-n-gram Python work: ~0.1 ms for 500 characters), and weighted like
the bag of tokens: sublinear tf-idf, L2-normalised, times ``WEIGHT``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 18
BUCKETS = 1 << BITS
ORDERS = (2, 3)
WEIGHT = 1.0
SETTINGS = {"bits": BITS, "orders": list(ORDERS), "weight": WEIGHT}
"""Recorded in a head: one trained with other settings is refused (its columns would mean other n-grams)."""

_MIX = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes each code point into the running hash
_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: the top BITS bits of the product are uniform
_SHIFT = np.uint64(64 - BITS)

Columns = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float32]


def counts(text: str) -> tuple[Columns, Floats]:
    """The distinct n-gram columns of ``text`` (lower-cased) and how often each occurs."""
    codes = np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts = []
    for order in ORDERS:
        size = codes.size - order + 1
        if size <= 0:
            continue
        hashed = np.full(size, order, dtype=np.uint64)
        for k in range(order):
            hashed = hashed * _MIX + codes[k : k + size]  # wraps modulo 2^64, as intended
        parts.append((hashed * _SPREAD) >> _SHIFT)
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    columns, found = np.unique(np.concatenate(parts), return_counts=True)
    return columns.astype(np.int64), found.astype(np.float32)


def weigh(columns: Columns, found: Floats, idf: Floats) -> Floats:
    """Sublinear tf-idf of ``counts``' result, L2-normalised to ``WEIGHT``."""
    values = (1.0 + np.log(found)) * idf[columns]
    norm = float(np.sqrt(values @ values))
    scaled: Floats = (values * (WEIGHT / norm) if norm > 0 else values).astype(np.float32)
    return scaled
