"""Rendering a task's candidate: mirrored while it shadows, first model once promoted (the spec untouched),
neither once rolled back; and the operator's rendering cache follows the decisions."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.api.fleet import ModelFleet
from flotilla.reconcile import desiring
from flotilla.render.routing import render_router_config


def _body(state: str | None = None, **shadow: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "f", "namespace": "ai"},
        "spec": {
            "models": [
                {"name": "base", "source": {"uri": "pvc://m/base.gguf"}, "runtime": "llamacpp"},
                {"name": "tuned", "source": {"uri": "pvc://m/tuned.gguf"}, "runtime": "llamacpp"},
            ],
            "fallbacks": [{"name": "cloud", "provider": "openai-compatible", "baseURL": "https://c.example/v1",
                           "model": "m"}],
            "routing": {"tasks": [{"name": "math", "models": ["base"],
                                   "distillation": {"shadow": {"model": "tuned", **shadow}}}]},
        },
    }  # fmt: skip
    if state is not None:
        body["status"] = {"candidates": [{"task": "math", "model": "tuned", "state": state, "scored": 200}]}
    return body


def _math(body: dict[str, Any]) -> dict[str, Any]:
    wire = render_router_config(ModelFleet.from_body(body)).to_wire()
    task: dict[str, Any] = wire["tasks"][0]
    return task


def test_a_shadowing_candidate_is_mirrored_not_routed() -> None:
    task = _math(_body(share=0.3, score="judge", judge="cloud"))
    assert task["models"] == ["base"]
    assert task["shadow"] == {
        "model": "tuned", "share": 0.3, "score": "judge", "judge": "cloud",
        "checks": ["json", "complete", "non-empty"], "maxConcurrent": 4,
    }  # fmt: skip
    assert _math(_body("Shadowing"))["shadow"]["model"] == "tuned"


def test_a_promoted_candidate_becomes_the_first_model_and_is_no_longer_mirrored() -> None:
    body = _body("Promoted")
    task = _math(body)
    assert task["models"] == ["tuned", "base"] and task["shadow"] is None
    assert body["spec"]["routing"]["tasks"][0]["models"] == ["base"]  # the user's spec is not edited


def test_a_rolled_back_candidate_is_neither() -> None:
    task = _math(_body("RolledBack"))
    assert task["models"] == ["base"] and task["shadow"] is None


@pytest.mark.parametrize(
    ("state", "decisions"), [(None, ""), ("Shadowing", ""), ("Promoted", "math/tuned=Promoted")]
)
def test_decisions_key_the_rendering_cache(state: str | None, decisions: str) -> None:
    assert desiring.decisions(_body(state)) == decisions
