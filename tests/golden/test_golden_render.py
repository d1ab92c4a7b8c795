"""Golden files: each `tests/golden/<case>/input.yaml` renders to exactly the objects in `expected/`.

Compared as parsed YAML (normalised), so formatting does not matter, content does. To accept a change on
purpose: `FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden`, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.render import commands, documents
from flotilla.render.fleet import render_fleet
from flotilla.render.settings import RenderSettings

HERE = Path(__file__).resolve().parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "input.yaml").exists())
UPDATE = os.environ.get("FLOTILLA_UPDATE_GOLDEN") == "1"


def _file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def _render(case: str) -> dict[str, dict[str, Any]]:
    fleets = commands.read_fleets(str(HERE / case / "input.yaml"))
    objects = [obj for fleet in fleets for obj in render_fleet(fleet, RenderSettings())]
    rendered = {_file_name(obj): obj for obj in objects}
    assert len(rendered) == len(objects), "two children share a kind and name"
    return rendered


def test_there_are_cases() -> None:
    assert {
        "01-minimal",
        "02-realistic",
        "03-local",
        "vllm-sources",
        "llamacpp-sources",
        "fallbacks-only",
        "autoscaling",
    } <= set(CASES)


@pytest.mark.parametrize("case", ["01-minimal", "02-realistic", "03-local"])
def test_example_cases_are_the_examples_verbatim(case: str) -> None:
    example = HERE.parents[1] / "examples" / case / "fleet.yaml"
    assert (HERE / case / "input.yaml").read_text() == example.read_text(), f"copy {example} over input.yaml"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    rendered = _render(case)
    expected_dir = HERE / case / "expected"
    if UPDATE:
        expected_dir.mkdir(exist_ok=True)
        for old in expected_dir.glob("*.yaml"):
            old.unlink()
        for name, obj in rendered.items():
            (expected_dir / name).write_text(documents.dump_all([obj]), encoding="utf-8")
    expected = {
        p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(expected_dir.glob("*.yaml"))
    }
    assert sorted(rendered) == sorted(expected), (
        "objects added or removed (FLOTILLA_UPDATE_GOLDEN=1 to accept)"
    )
    for name, obj in rendered.items():
        assert obj == expected[name], f"{case}/expected/{name} differs (FLOTILLA_UPDATE_GOLDEN=1 to accept)"
