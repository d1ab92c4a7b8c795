"""The manifest beside every fine-tuned artefact: what it was made from and how, so a version in the store can
be traced to its base and data, and compared with the next one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Manifest:
    method: str
    base: str
    base_sha256: str
    data: str
    data_sha256: str
    examples: int
    steps: int
    batch_size: int
    learning_rate: float
    rank: int
    alpha: float
    template: str
    loss_before: float
    """Mean cross-entropy per answer token before training, on ``loss_on`` examples."""
    loss_after: float
    loss_on: str
    """``eval`` (the held-out file) or ``train`` (up to 32 training examples, when no eval file was given)."""
    load_seconds: float
    train_seconds: float
    total_seconds: float
    peak_rss_bytes: int
    adapter: str
    adapter_sha256: str


def write(path: Path, manifest: Manifest) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def read(path: Path) -> Manifest:
    return Manifest(**json.loads(path.read_text(encoding="utf-8")))


def summary(manifest: Manifest) -> dict[str, Any]:
    keys = ("method", "examples", "steps", "loss_before", "loss_after", "train_seconds", "peak_rss_bytes")
    return {key: getattr(manifest, key) for key in keys}
