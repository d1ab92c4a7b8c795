"""Multilingual sentence embeddings on CPU: a SentencePiece tokenizer, static token rows and a small MLP.

The asset is Google's multilingual Universal Sentence Encoder (USE v3, 16 languages and many more seen in
pre-training) with its context window made static (see ``build.py``): embedding a 2,000-token prompt is a
tokenizer call, a gather of int8 rows and ~1 MFLOP of MLP, where the encoder itself takes ~100 ms on one
core. The task head reads only the MLP's last hidden layer (``features``: ~0.3 MFLOP). Only numpy and
sentencepiece are needed at run time.

For prompts the head is unsure of, ``embed_ids(ids, prefix=K)`` runs the encoder's real CNN over the first
K tokens (their rows then see their neighbours, as in USE itself) and keeps static rows for the rest: ~2 ms
for K = 32, paid only by the second stage of the classifier (``heads.py``).

Asset layout (a directory): ``sp.model`` (SentencePiece), ``static-coefficients.npy`` (int8 V x k, memory-
mapped), ``static.npz`` (``scales`` V, ``mean`` 512, ``basis`` k x 512, and the MLP's ``d0 d1 p1 d2 p3
d3``), ``context.npz`` (the
encoder's CNN, unchanged), ``context-table.npy`` (its uint8 token table, memory-mapped), ``meta.json``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flotilla import errors

PACKAGED_ASSET = Path(__file__).parent / "assets" / "use-m3-static"
"""The asset shipped inside the package (built by ``scripts/build-classifier``)."""

MAX_TOKENS = 2048
"""Tokens embedded per text; the rest is ignored (turns are clipped to 4,000 characters before this)."""

BOS, EOS = 1, 2
ASSET_FORMAT = "flotilla-static-use/v1"
FEATURES = "use-mlp-hidden-2"
"""Which layer ``features`` returns; a head records it and is refused by a router that computes another."""

Vector = npt.NDArray[np.float32]
TokenIds = npt.NDArray[np.int64]


def _layer_norm(x: Vector, gamma: Vector, beta: Vector, eps: float) -> Vector:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    normed: Vector = centred / np.sqrt(variance + eps) * gamma + beta
    return normed


class _ContextCnn:
    """USE's n-gram CNN over a short token sequence: each token's row with its neighbours in view.

    Written out here (not imported from the encoder package) because the router needs only this one step,
    for a few dozen tokens, without the package's pure-Python tokenizer and its 120 MB of start-up memory.
    """

    def __init__(self, arrays: Any, table: npt.NDArray[np.uint8]) -> None:
        self.table = table
        self.scale: Vector = arrays["table_scale"]
        self.lo: Vector = arrays["table_lo"]
        self.proj_w, self.proj_b = arrays["proj_w"], arrays["proj_b"]
        self.ln_g_all, self.ln_b_all = arrays["ln_g_all"], arrays["ln_b_all"]
        self.ln_g, self.ln_b = arrays["ln_g"], arrays["ln_b"]
        self.cnn_w, self.cnn_b = arrays["cnn_w"], arrays["cnn_b"]
        self.eps = float(arrays["eps"])
        self.orders = [(int(n), int(left)) for n, left in arrays["orders"]]
        count = len(self.orders)
        self.w1 = [arrays[f"w1_{i}"] for i in range(count)]
        self.b1 = [arrays[f"b1_{i}"] for i in range(count)]
        self.w2 = [arrays[f"w2_{i}"] for i in range(count)]
        self.b2 = [arrays[f"b2_{i}"] for i in range(count)]
        self.widest_left = max(left for _, left in self.orders)
        self.widest_right = max(n - 1 - left for n, left in self.orders)

    def rows(self, ids: TokenIds) -> Vector:
        """The summed in-context rows of ``ids`` (one sentence: windows stop at its ends)."""
        n = len(ids)
        chunk = ids % len(self.scale)
        emb = self.table[ids].astype(np.float32) * self.scale[chunk, None] + self.lo[chunk, None]
        x = _layer_norm(emb @ self.proj_w + self.proj_b, self.ln_g_all, self.ln_b_all, self.eps)
        positions = np.arange(n)[:, None] + np.arange(-self.widest_left, self.widest_right + 1)
        window = np.where((positions >= 0) & (positions < n), positions, n)  # n: the zero row
        width = self.w1[0].shape[1]
        buffer = np.zeros((n + 1, width), dtype=np.float32)
        branches = [emb]
        for i, (order, left) in enumerate(self.orders):
            xs = x[:, i * width : (i + 1) * width]
            cols = window[:, self.widest_left - left : self.widest_left - left + order]
            buffer[:n] = xs
            h = np.maximum(buffer[cols].reshape(n, order * width) @ self.w1[i] + self.b1[i], 0) + xs
            buffer[:n] = h
            branches.append(
                np.maximum(buffer[cols].reshape(n, order * width) @ self.w2[i] + self.b2[i], 0) + h
            )
        feats = _layer_norm(np.concatenate(branches, axis=1), self.ln_g, self.ln_b, self.eps)
        summed: Vector = feats.sum(axis=0) @ self.cnn_w + n * self.cnn_b
        return summed


class StaticEmbedder:
    """Embeds text as USE does, with each token's context-dependent row replaced by a static one."""

    __slots__ = (
        "_coefficients",
        "_context",
        "_first_layers",
        "_first_offset",
        "_first_unfolded",
        "_mlp",
        "_scales",
        "_tokenizer",
        "dimensions",
        "feature_dimensions",
        "meta",
        "vocabulary",
    )

    def __init__(self, asset: Path) -> None:
        import sentencepiece  # imported here: `flotilla crds` must not pay for it

        try:
            self.meta: dict[str, Any] = json.loads((asset / "meta.json").read_text())
            if self.meta.get("format") != ASSET_FORMAT:
                raise ValueError(f"format {self.meta.get('format')!r}, expected {ASSET_FORMAT!r}")
            self._tokenizer: Any = sentencepiece.SentencePieceProcessor(model_file=str(asset / "sp.model"))
            # Both token tables are memory-mapped (read-only, shared by every process on the node, paged in
            # as tokens are used), so a router's private memory holds only the small arrays.
            # (viewed as a plain array: numpy.memmap's indexing hooks cost more than the gather itself)
            self._coefficients: npt.NDArray[np.int8] = np.load(
                asset / "static-coefficients.npy", mmap_mode="r", allow_pickle=False
            ).view(np.ndarray)
            with np.load(asset / "static.npz", allow_pickle=False) as arrays:
                self._scales: Vector = arrays["scales"]
                mean: Vector = arrays["mean"]
                basis: npt.NDArray[np.float32] = arrays["basis"]
                d0, d1, p1, d2, p3, d3 = (arrays[key] for key in ("d0", "d1", "p1", "d2", "p3", "d3"))
            table = np.load(asset / "context-table.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
            with np.load(asset / "context.npz", allow_pickle=False) as arrays:
                self._context = _ContextCnn(arrays, table)
        except Exception as exc:  # any unreadable or foreign file: the caller reports it as config
            raise errors.ConfigError(f"embedding asset {asset} does not load: {exc}") from exc
        self.vocabulary = int(self._coefficients.shape[0])
        self.dimensions = int(d3.shape[1])
        # The MLP's first two matrices see the 512-d sum only through the PCA basis: folding it in makes
        # the first step one 256 x 640 product (0.6 MB) instead of 256 x 512 plus two 512 x 320 (1.8 MB).
        # The router is bound by memory traffic here, not by arithmetic (bench/classify_latency.py).
        # d0 and p1 are kept only inside ``both`` (and the basis and mean only folded in): one copy each,
        # a router's private memory being one of the figures.
        both = np.concatenate([d0, p1], axis=1)
        width = int(d0.shape[1])
        self._first_unfolded: npt.NDArray[np.float32] = both  # for in-context rows, which are 512-d
        self._first_layers: npt.NDArray[np.float32] = (basis @ both).astype(np.float32)
        self._first_offset: Vector = (mean @ both).astype(np.float32)
        self._mlp = (d1, d2, p3, d3)  # the layers after the first (d0 and p1 live only in ``both``)
        self.feature_dimensions = width

    def token_ids(self, text: str) -> TokenIds:
        """SentencePiece ids of ``text`` with the sentence markers, at most ``MAX_TOKENS``."""
        pieces = self._tokenizer.encode(text, return_type="numpy")[: MAX_TOKENS - 2]  # no Python list
        ids = np.empty(len(pieces) + 2, dtype=np.int64)
        ids[0], ids[1:-1], ids[-1] = BOS, pieces, EOS
        return ids

    def _hidden(self, ids: TokenIds, prefix: int) -> Vector:
        """The MLP's second hidden layer (not normalised) for ``ids``; the first ``prefix`` tokens get
        their in-context rows, the rest static ones."""
        head, rest = ids[:prefix], ids[prefix:]
        d1 = self._mlp[0]
        width = self.feature_dimensions
        # sum of static rows = n * mean + (sum of scaled coefficients) @ basis: a gather and, with the
        # basis folded into the first layers, one mat-vec
        summed = self._scales[rest] @ self._coefficients[rest].astype(np.float32)
        pre = summed @ self._first_layers + len(rest) * self._first_offset
        if len(head):
            pre = pre + self._context.rows(head) @ self._first_unfolded
        pre = pre / np.float32(np.sqrt(len(ids)))
        y0 = np.maximum(pre[:width], 0)
        hidden: Vector = np.maximum(pre[width:] + y0 @ d1, 0)
        return hidden

    def features(self, ids: TokenIds, prefix: int = 0) -> Vector:
        """What the task head reads: the encoder MLP's second hidden layer, unit length. Cross-validated
        on the train split it classifies as well as the final embedding (docs/routing.md) at a third of
        the weights read per prompt, which is what a prompt's cost is made of."""
        hidden = self._hidden(ids, prefix)
        norm = float(np.sqrt(hidden @ hidden))
        return hidden / norm if norm > 0 else hidden

    def embed_ids(self, ids: TokenIds, prefix: int = 0) -> Vector:
        """The unit-length sentence embedding of a token id sequence (from ``token_ids``); the first
        ``prefix`` tokens get their in-context rows, the rest static ones."""
        y1 = self._hidden(ids, prefix)
        d2, p3, d3 = self._mlp[1:]
        y2 = np.maximum(y1 @ d2, 0)
        z: Vector = np.tanh(y1 @ p3 + y2 @ d3).astype(np.float32)
        norm = float(np.sqrt(z @ z))
        return z / norm if norm > 0 else z

    def embed(self, text: str) -> Vector:
        """The unit-length embedding of ``text``."""
        return self.embed_ids(self.token_ids(text))

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
