"""Status writing: a burst of refresh requests for one fleet becomes one write of the newest state.

The Kubernetes side is a recording stand-in here because the point is the coalescing logic; writing
status to a real apiserver is covered by tests/integration.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import yaml

from flotilla.controller import configuring, contexts, handling
from flotilla.reconcile import desiring, planning, statuses

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-minimal" / "fleet.yaml"


class RecordingKube:
    """Records status writes and Events instead of sending them."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []

    def apply_status(self, owner: Any, status: dict[str, Any], plural: str) -> dict[str, Any]:
        self.statuses.append(status)
        return {}

    def post_event(self, owner: Any, type_: str, reason: str, message: str) -> None:
        self.events.append(reason)


def fleet() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(namespace="ai", uid="u-1", generation=1)
    return doc


def view(ready: int) -> statuses.DeploymentView:
    return statuses.DeploymentView("minimal-pocket", "model", "pocket", 1, ready, 1, 1, 1)


def router() -> statuses.DeploymentView:
    return statuses.DeploymentView("minimal-router", "router", None, 1, 1, 1, 1, 1)


async def test_burst_of_refreshes_is_one_write_of_the_newest_state() -> None:
    kube = RecordingKube()
    context = contexts.Context(kube=kube, config=configuring.OperatorConfig())  # type: ignore[arg-type]
    body = fleet()
    context.state(body).applied_generation = 1
    logger = logging.getLogger("test")
    await asyncio.gather(
        *(handling.refresh_fleet_status(body, context, [view(0), router()], logger) for _ in range(5)),
        handling.refresh_fleet_status(body, context, [view(1), router()], logger),
    )
    assert len(kube.statuses) == 1
    assert kube.statuses[0]["modelsReady"] == "1/1"
    assert kube.events == ["FleetReady"]
    # the same state again writes nothing
    await handling.refresh_fleet_status(body, context, [view(1), router()], logger)
    assert len(kube.statuses) == 1


def test_rendering_cache_gives_back_what_was_rendered_until_the_generation_changes() -> None:
    context = contexts.Context(kube=RecordingKube(), config=configuring.OperatorConfig())  # type: ignore[arg-type]
    body = fleet()
    rendered = desiring.desired_children(body)
    assert context.desired(body) == rendered
    assert context.desired(body) == rendered  # from the compressed cache now
    for manifest in rendered:
        assert context.desired_child(body, planning.child_key(manifest)) == manifest
    assert context.desired_child(body, ("v1", "ConfigMap", "not-a-child")) is None
    assert context.endpoint(body) == statuses.endpoint(rendered)
    edited = fleet()
    edited["metadata"]["generation"] = 2
    edited["spec"]["models"][0]["replicas"] = {"min": 2, "max": 2}
    changed = context.desired(edited)
    assert changed == desiring.desired_children(edited) != rendered
