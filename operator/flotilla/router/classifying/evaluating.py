"""Routing accuracy on labelled prompts: per task, language and source, calibration, confusion matrix.

Used by ``bench/routing_eval.py`` (prints the tables) and the accuracy regression test. Labels are task
names plus ``general``, meaning "the fleet's default task": a prediction of the default task counts as
``general``.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from flotilla.router.classifying import classifiers

Result = tuple[dict[str, str], str, classifiers.Classification]
"""A labelled row, its predicted label and the raw classification."""

GENERAL = "general"


def load_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(rows: list[dict[str, str]], classifier: classifiers.Classifier) -> list[Result]:
    """Each row with its predicted label (the default task mapped to ``general``) and the raw result."""
    out = []
    for row in rows:
        result = classifier.classify([{"role": "user", "content": row["prompt"]}])
        predicted = GENERAL if result.task == classifier.default_task else result.task
        out.append((row, predicted, result))
    return out


def accuracy(results: list[Result]) -> float:
    return sum(row["task"] == predicted for row, predicted, _ in results) / max(len(results), 1)


def _table(title: str, groups: dict[str, list[bool]]) -> list[str]:
    lines = [f"| {title} | n | correct | accuracy |", "|---|---:|---:|---:|"]
    for key in sorted(groups):
        hits = groups[key]
        lines.append(f"| {key} | {len(hits)} | {sum(hits)} | {sum(hits) / len(hits):.3f} |")
    return lines


def calibration_error(results: list[Result]) -> float:
    """Expected calibration error of the scores (10 equal-width bins)."""
    from flotilla.router.classifying import training

    return training.expected_calibration_error(
        [result.score for _, _, result in results], [row["task"] == p for row, p, _ in results]
    )


def groups(results: list[Result], key: str) -> dict[str, list[bool]]:
    """Correctness per value of a row field (``task``, ``lang``, ``source``)."""
    found: dict[str, list[bool]] = collections.defaultdict(list)
    for row, predicted, _ in results:
        found[str(row.get(key, "?"))].append(row["task"] == predicted)
    return dict(found)


def report(results: list[Result]) -> str:
    """Markdown tables: overall, per task, language and source, confusion matrix (rows: label, columns:
    predicted)."""
    confusion: collections.Counter[tuple[str, str]] = collections.Counter()
    for row, predicted, _ in results:
        confusion[row["task"], predicted] += 1
    labels = sorted({row["task"] for row, _, _ in results} | {p for _, p, _ in results})
    correct = sum(row["task"] == p for row, p, _ in results)
    lines = [
        f"overall: {correct}/{len(results)} = {accuracy(results):.3f}; "
        f"expected calibration error {calibration_error(results):.3f}",
        "",
    ]
    for key in ("task", "lang", "source"):
        if any(key in row for row, _, _ in results):
            lines += [*_table(key, groups(results, key)), ""]
    lines.append("| label \\ predicted | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(str(confusion[label, p]) for p in labels) + " |")
    return "\n".join(lines)
