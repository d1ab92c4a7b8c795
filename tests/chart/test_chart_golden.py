"""Golden files: `helm template` of each `tests/chart/golden/<case>/values.yaml` equals `expected.yaml`.

Compared as normalised YAML (objects sorted, keys sorted), so formatting does not matter, content does.
To accept a change on purpose: `FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart`, then review the diff.
"""

from __future__ import annotations

import os

import chartkit
import pytest
import yaml

CASES = sorted(p.name for p in chartkit.GOLDEN.iterdir() if (p / "values.yaml").exists())
UPDATE = os.environ.get("FLOTILLA_UPDATE_GOLDEN") == "1"


def test_there_are_cases() -> None:
    assert {"default", "namespaced", "local-images"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_template_matches_golden(case: str) -> None:
    rendered = chartkit.normalise(chartkit.template(chartkit.GOLDEN / case / "values.yaml"))
    expected_path = chartkit.GOLDEN / case / "expected.yaml"
    if UPDATE:
        expected_path.write_text(rendered)
    assert expected_path.exists(), f"no {expected_path}: run with FLOTILLA_UPDATE_GOLDEN=1 and review it"
    expected = list(yaml.safe_load_all(expected_path.read_text()))
    actual = list(yaml.safe_load_all(rendered))
    assert [chartkit.key(o) for o in actual] == [chartkit.key(o) for o in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got == want, f"{chartkit.key(got)} differs from {expected_path}"
