"""Static sentence embeddings on CPU: a tokenizer plus one vector per token, mean-pooled.

The asset is all-MiniLM-L6-v2 distilled into static token vectors (model2vec, see ``build.py``): embedding a
200-token prompt is a tokenizer call and a row gather — well under a millisecond, where running the
transformer itself takes ~70 ms on one core. Only numpy and tokenizers are needed at run time.

Asset layout (a directory): ``tokenizer.json`` (Hugging Face tokenizers), ``vectors.npy`` (int8, one row per
token id), ``scales.npy`` (float32, one per row: int8 times scale approximates the distilled vector),
``meta.json``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flotilla import errors

PACKAGED_ASSET = Path(__file__).parent / "assets" / "minilm-static-256"
"""The asset shipped inside the package (built by ``python -m flotilla.router.classifying.build``)."""

MAX_TOKENS = 512
"""Tokens embedded per text; the rest is ignored (the classifier clips turns before this anyway)."""

Vector = npt.NDArray[np.float32]


class StaticEmbedder:
    """Embeds text as the normalised mean of its tokens' static vectors."""

    __slots__ = ("_tokenizer", "_unknown", "_vectors", "dimensions", "meta")

    def __init__(self, asset: Path) -> None:
        from tokenizers import Tokenizer  # imported here: `flotilla crds` must not pay for it

        try:
            self._tokenizer: Any = Tokenizer.from_file(str(asset / "tokenizer.json"))
            quantized = np.load(asset / "vectors.npy")
            scales = np.load(asset / "scales.npy")
            self.meta: dict[str, Any] = json.loads((asset / "meta.json").read_text())
        except (OSError, ValueError, Exception) as exc:
            raise errors.ConfigError(f"embedding asset {asset} does not load: {exc}") from exc
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._unknown: int | None = self._tokenizer.token_to_id("[UNK]")
        # Dequantised once: 30k x 256 float32 is ~31 MB and makes every lookup a plain gather.
        self._vectors: npt.NDArray[np.float32] = quantized.astype(np.float32) * scales[:, None].astype(
            np.float32
        )
        self.dimensions = int(self._vectors.shape[1])

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens, unknown tokens dropped as model2vec does), at most
        ``MAX_TOKENS``."""
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        if self._unknown is not None:
            ids = [i for i in ids if i != self._unknown]
        return ids[:MAX_TOKENS]

    def embed(self, text: str) -> Vector:
        """The unit-length embedding of ``text`` (all zeros for text with no known tokens)."""
        ids = self.tokenize(text)
        if not ids:
            return np.zeros(self.dimensions, dtype=np.float32)
        mean: Vector = self._vectors[ids].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def embed_many(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self.embed(t) for t in texts])


_cache: dict[Path, StaticEmbedder] = {}
_cache_lock = threading.Lock()


def load(asset: Path | None = None) -> StaticEmbedder:
    """The embedder for ``asset`` (default: the packaged one), loaded once per process, reused on reloads."""
    path = (asset or PACKAGED_ASSET).resolve()
    with _cache_lock:
        embedder = _cache.get(path)
        if embedder is None:
            embedder = StaticEmbedder(path)
            _cache[path] = embedder
        return embedder
