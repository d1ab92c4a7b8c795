"""Routing quality regression of the shipped classifier on labelled prompts it was never trained on.

Correctness tests, not timing tests. The data live outside the repo, in ``shared/data`` next to the checkout
(as on developer machines and in CI); a missing file is a failure, not a skip. The thresholds are the
issue's acceptance figures where the classifier reaches them and the measured figure less a small margin
where it does not yet (docs/routing.md has the full tables from ``bench/routing_eval.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.router import classifying
from flotilla.router.classifying import datasets, evaluating

PROBES = Path(__file__).resolve().parents[2] / "data" / "routing-probes.jsonl"


@pytest.fixture(scope="module")
def classifier() -> classifying.Classifier:
    return classifying.build_classifier(classifying.preset_config(["code", "math", "writing"], "chat"))


def test_dev_split_of_routing_train(classifier: classifying.Classifier) -> None:
    rows = [r for r in datasets.routing_train() if r["split"] == "dev"]
    assert len(rows) == 754
    results = evaluating.evaluate(rows, classifier)
    report = evaluating.report(results)
    assert evaluating.accuracy(results) >= 0.85, report
    assert evaluating.calibration_error(results) <= 0.05, report  # measured: 0.046
    for task, hits in evaluating.groups(results, "task").items():
        assert sum(hits) / len(hits) >= 0.80, (task, report)  # measured: writing 0.812, general 0.837
    for lang, hits in evaluating.groups(results, "lang").items():
        if len(hits) >= 40:
            assert sum(hits) / len(hits) >= 0.80, (lang, report)  # measured: zh 0.811, fr 0.881


def test_routing_dev_set(classifier: classifying.Classifier) -> None:
    rows = evaluating.load_rows(datasets.shared_data() / "routing-dev.jsonl")
    assert len(rows) == 598
    results = evaluating.evaluate(rows, classifier)
    assert evaluating.accuracy(results) >= 0.84, evaluating.report(results)  # measured: 0.858


def test_the_same_request_routes_alike_in_eight_languages(classifier: classifying.Classifier) -> None:
    probes = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(probes) == 40
    agreeing = 0
    right: dict[str, int] = {}
    for probe in probes:
        labels = {}
        for lang, prompt in probe["prompts"].items():
            task = classifier.classify([{"role": "user", "content": prompt}]).task
            labels[lang] = "general" if task == "chat" else task
            right[lang] = right.get(lang, 0) + (labels[lang] == probe["task"])
        agreeing += len(set(labels.values())) == 1
    assert agreeing >= 36, agreeing  # measured: 38 of 40 alike in all 8 languages
    assert len(right) == 8
    for lang, hits in right.items():
        assert hits >= 36, (lang, hits)  # each language: at least 90% routed to the probe's task
