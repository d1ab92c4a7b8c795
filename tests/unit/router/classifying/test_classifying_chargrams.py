"""The character n-gram bag: stable columns, independent of case and of how the tokenizer cuts a word, and
heads trained before it (without n-gram weights) still load and classify."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from flotilla import errors
from flotilla.router.classifying import chargrams, embedding, heads


def test_columns_are_fixed_across_processes() -> None:
    # a shipped head's weights are indexed by these columns: a changed hash would silently scramble them
    mix, spread = 0x100000001B3, 0x9E3779B97F4A7C15
    bigram = (((2 * mix + ord("a")) * mix + ord("b")) % 2**64 * spread % 2**64) >> (64 - chargrams.BITS)
    columns, found = chargrams.counts("Ab")
    assert columns.tolist() == [bigram] and found.tolist() == [1.0]


def test_a_word_gives_the_same_ngrams_wherever_it_stands() -> None:
    poem, _ = chargrams.counts("写诗")
    assert set(poem.tolist()) <= set(chargrams.counts("请帮我写诗: 关于大海")[0].tolist())
    assert chargrams.counts("Write a POEM")[0].tolist() == chargrams.counts("write a poem")[0].tolist()


def test_bigrams_and_trigrams_are_counted() -> None:
    columns, found = chargrams.counts("abab")  # ab, ba, ab; aba, bab
    assert sorted(found.tolist()) == [1.0, 1.0, 1.0, 2.0]
    assert columns.size == 4 and (np.diff(columns) > 0).all()
    assert chargrams.counts("a")[0].size == 0 and chargrams.counts("")[0].size == 0


def test_the_bag_has_the_configured_norm() -> None:
    idf = np.linspace(1.0, 2.0, chargrams.BUCKETS, dtype=np.float32)
    columns, found = chargrams.counts("写一首关于秋天的诗")
    values = chargrams.weigh(columns, found, idf)
    assert float(np.sqrt(values @ values)) == pytest.approx(chargrams.WEIGHT, rel=1e-5)
    assert columns.dtype == np.int64 and values.dtype == np.float32


def _without_ngrams(head: heads.Head) -> bytes:
    """The packaged head's file as a head trained before character n-grams would have written it."""
    with np.load(io.BytesIO(head.to_bytes()), allow_pickle=False) as arrays:
        kept = {key: arrays[key] for key in arrays.files if "char_" not in key}
    meta = json.loads(str(kept["meta"]))
    del meta["chars"]
    kept["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **kept)
    return buffer.getvalue()


def test_a_head_without_ngrams_still_loads_and_classifies() -> None:
    embedder = embedding.load()
    head = heads.load(heads.PACKAGED_HEAD)
    assert head.char_weights is not None and head.meta["chars"] == chargrams.SETTINGS
    older = heads.from_bytes(_without_ngrams(head))
    assert older.char_weights is None and older.refine is not None and older.refine.head.char_weights is None
    older.check_compatible(embedder)
    text = "Write a Python function that reverses a linked list."
    probs = older.predict(embedder, embedder.token_ids(text), text)
    assert older.classes[int(probs.argmax())] == "code"
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_a_head_with_other_ngram_settings_is_refused() -> None:
    head = heads.load(heads.PACKAGED_HEAD)
    other = heads.from_bytes(head.to_bytes())
    other.meta["chars"] = {**chargrams.SETTINGS, "bits": 16}
    with pytest.raises(errors.ConfigError, match="character n-grams"):
        other.check_compatible(embedding.load())
