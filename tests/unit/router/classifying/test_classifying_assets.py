"""The shipped classifier is rebuilt from the data by one script, to the same bytes.

``scripts/build-classifier --out DIR`` distils the embedding and trains the head from the shipped rows (the
permissive train-split rows of routing-train.jsonl and data/routing/); the result must equal the checked-in
assets file for file, and the recorded data hashes must be those of today's data. ~5 min on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from flotilla.router.classifying import datasets, embedding, heads, training

REPOSITORY = Path(__file__).resolve().parents[4]


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
    for name in ("use-m3-static/static.npz", "use-m3-static/sp.model", "routing-head/classifier.npz"):
        assert sha256(tmp_path / name) == sha256(embedding.PACKAGED_ASSET.parent / name), name
    rebuilt = json.loads((tmp_path / "use-m3-static" / "meta.json").read_text())
    shipped = json.loads((embedding.PACKAGED_ASSET / "meta.json").read_text())
    assert rebuilt == shipped


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
