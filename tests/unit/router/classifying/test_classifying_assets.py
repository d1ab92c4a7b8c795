"""The shipped classifier is rebuilt from the data by one script, to the same assets.

``scripts/build-classifier --out DIR`` distils the embedding and trains the head from the shipped rows (the
permissive train-split rows of routing-train.jsonl and data/routing/); the recorded data hashes must be those
of today's data. ~5 min on 2 cores.

What "the same" means: the tokenizer and the encoder's CNN are copied or quantised without floating-point
sums, so they are the same bytes anywhere. The rest goes through BLAS: single-threaded OpenBLAS gives the
same bytes on the CPU that built the assets, but picks other kernels on another CPU, whose sums round
differently in the last bits (2026-12-07, an AMD EPYC against the assets built on an earlier machine: the
PCA basis moved by 6e-6, 0.013% of the int8 rows by one step, and the head, fitted on those features, routed
3,776 of the 3,777 routing-train prompts as the shipped one). So those are compared within rounding, and
the head by what it decides.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

from flotilla.router import classifying
from flotilla.router.classifying import datasets, embedding, heads, training

REPOSITORY = Path(__file__).resolve().parents[4]
EXACT = ("use-m3-static/sp.model", "use-m3-static/context.npz", "use-m3-static/context-table.npy")
ROUNDED = ("static.npz", "static-coefficients.npy")
"""The embedding files BLAS computes (their hashes in meta.json differ with them)."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rebuild_gives_the_checked_in_assets(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPOSITORY / "scripts" / "build-classifier"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    shipped_dir, rebuilt_dir = embedding.PACKAGED_ASSET, tmp_path / "use-m3-static"
    for name in EXACT:
        assert sha256(tmp_path / name) == sha256(shipped_dir.parent / name), name
    with np.load(shipped_dir / "static.npz") as shipped, np.load(rebuilt_dir / "static.npz") as rebuilt:
        assert sorted(shipped.files) == sorted(rebuilt.files)
        for key in shipped.files:
            np.testing.assert_allclose(rebuilt[key], shipped[key], rtol=0, atol=1e-4, err_msg=key)
    steps = np.abs(
        np.load(rebuilt_dir / "static-coefficients.npy").astype(np.int16)
        - np.load(shipped_dir / "static-coefficients.npy").astype(np.int16)
    )
    assert steps.max() <= 1 and (steps > 0).mean() < 1e-3
    rebuilt_meta = json.loads((rebuilt_dir / "meta.json").read_text())
    shipped_meta = json.loads((shipped_dir / "meta.json").read_text())
    for meta in (rebuilt_meta, shipped_meta):
        for name in ROUNDED:
            meta["files_sha256"].pop(name)
    assert rebuilt_meta == shipped_meta

    rebuilt_head = heads.load(tmp_path / "routing-head" / "classifier.npz")
    shipped_head = heads.load(heads.PACKAGED_HEAD)
    assert rebuilt_head.classes == shipped_head.classes
    assert rebuilt_head.temperature == shipped_head.temperature
    assert np.array_equal(rebuilt_head.idf, shipped_head.idf)
    config = classifying.preset_config(["code", "math", "writing"], "chat")
    shipped_classifier = classifying.build_classifier(config)
    rebuilt_classifier = classifying.build_classifier(config, asset=rebuilt_dir, head=rebuilt_head)
    prompts = [[{"role": "user", "content": row["prompt"]}] for row in datasets.routing_train()]
    same = sum(shipped_classifier.classify(p).task == rebuilt_classifier.classify(p).task for p in prompts)
    assert same >= 0.995 * len(prompts), f"{same} of {len(prompts)} routed alike"


def test_recorded_hashes_match_todays_data() -> None:
    rows = datasets.shipped_training_rows()
    assert all(row["license"] in datasets.PERMISSIVE_LICENCES for row in rows)
    assert not any(row.get("split") == "dev" for row in rows)
    head = heads.load(heads.PACKAGED_HEAD)
    assert head.meta["data_sha256"] == training.data_sha256(
        training.Row(r["prompt"], r["task"]) for r in rows
    )
    meta = json.loads((embedding.PACKAGED_ASSET / "meta.json").read_text())
    corpus = "\n".join(r["prompt"] for r in rows)
    assert meta["corpus_sha256"] == hashlib.sha256(corpus.encode()).hexdigest()
