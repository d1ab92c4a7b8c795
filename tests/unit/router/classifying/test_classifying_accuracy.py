"""Routing quality regression: the built-in presets on the labelled dev prompts must stay >= 90% accurate.

A correctness test of routing, not a timing test. The dev set lives outside the repo, in ``shared/data`` next
to the checkout (as on developer machines and in CI); a missing file is a failure, not a skip.
"""

from __future__ import annotations

from pathlib import Path

from flotilla.router import classifying
from flotilla.router.classifying import evaluating

REPO = Path(__file__).resolve().parents[4]
DEV_SET = REPO.parent / "shared" / "data" / "routing-dev.jsonl"


def test_builtin_presets_route_the_dev_set() -> None:
    assert DEV_SET.exists(), f"routing dev set missing: {DEV_SET}"
    rows = evaluating.load_rows(DEV_SET)
    assert len(rows) == 598
    classifier = classifying.build_classifier(classifying.preset_config(["code", "math", "writing"], "chat"))
    assert classifier.uses_embeddings
    results = evaluating.evaluate(rows, classifier)
    overall = evaluating.accuracy(results)
    assert overall >= 0.90, evaluating.report(results)
    # No task may be given up on to reach the overall number.
    for task in ("code", "math", "writing", "general"):
        subset = [r for r in results if r[0]["task"] == task]
        assert evaluating.accuracy(subset) >= 0.6, (task, evaluating.report(results))
