"""Which labelled prompts the shipped classifier may learn from, and where they live.

Weights that Flotilla ships (the embedding asset's corpus averages and the packaged head) learn only from
rows whose licence allows redistribution of derived weights: the permissive rows of the train split of
``routing-train.jsonl`` and the project's own prompts in ``data/routing/`` (Apache-2.0). The dev split, the
non-permissive rows and ``routing-dev.jsonl`` are for evaluation only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PERMISSIVE_LICENCES = frozenset({"Apache-2.0", "MIT", "CC-BY-SA-3.0"})
REPOSITORY = Path(__file__).resolve().parents[4]
OWN_DATA = REPOSITORY / "data" / "routing"
SHIPPED_OFFSETS = {"writing": 0.2, "general": -0.05}
"""Logit offsets of the shipped head (``flotilla classifier train --offset``), chosen by cross-validation on
the train split (docs/routing.md): the own prompts make writing easier to recognise than real traffic does,
so the head is shifted towards writing and away from general."""


def shared_data() -> Path:
    """The shared data folder: $FLOTILLA_SHARED_DATA, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FLOTILLA_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def own_rows() -> list[dict[str, Any]]:
    """The project's own labelled prompts, file by file in name order."""
    return [row for path in sorted(OWN_DATA.glob("*.jsonl")) for row in read_jsonl(path)]


def routing_train() -> list[dict[str, Any]]:
    return read_jsonl(shared_data() / "routing-train.jsonl")


def shipped_training_rows() -> list[dict[str, Any]]:
    """The rows the shipped weights learn from, in a fixed order."""
    permissive = [
        row for row in routing_train() if row["split"] == "train" and row["license"] in PERMISSIVE_LICENCES
    ]
    return permissive + own_rows()


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
