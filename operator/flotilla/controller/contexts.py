"""In-memory operator state shared by all handlers (kept in kopf's ``memo``): the API client and, per
fleet, the last published status, the status writer's inputs and a cache of the rendered children.

Nothing here is authoritative: after a restart it is rebuilt from the fleets' stored status, which is why
restarting the operator neither repeats Events nor loses track of applied generations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flotilla.autoscaler.settings import AutoscalerSettings
from flotilla.controller import configuring
from flotilla.reconcile import desiring, kube

FleetKey = tuple[str, str]
"""(namespace, name)."""


@dataclasses.dataclass
class FleetState:
    """What the operator remembers about one fleet between handler calls."""

    flushing: bool = False
    """A status write for this fleet is scheduled or running (see ``handling.refresh_fleet_status``)."""
    pending: tuple[dict[str, Any], list[Any], Any] | None = None
    """Newest (fleet, Deployment views, logger) waiting for the status writer."""
    published: dict[str, Any] | None = None
    """The status last written (or found stored at startup); transitions are computed against it."""
    applied_generation: int | None = None
    """The generation whose children were last applied (or found rejected)."""
    spec_error: str | None = None
    """Why the applied generation could not be rendered, if it could not."""
    model_errors: dict[str, str] = dataclasses.field(default_factory=dict)
    """Models of the applied generation that cannot run as specified (an add-on missing), with why."""
    rendered: tuple[str, int, list[dict[str, Any]]] | None = None
    """(uid, generation, children) of the last rendering, so child events do not re-render."""


@dataclasses.dataclass
class Context:
    """The operator's shared objects; one per process."""

    kube: kube.Kube
    config: configuring.OperatorConfig
    autoscaler: AutoscalerSettings | None = None
    """The built-in autoscaler's settings; None when it is off (``--no-autoscaler``)."""
    fleets: dict[FleetKey, FleetState] = dataclasses.field(default_factory=dict)

    def state(self, fleet: Mapping[str, Any]) -> FleetState:
        """The fleet's state, seeded from its stored status the first time this process sees it."""
        meta = fleet["metadata"]
        key = (meta["namespace"], meta["name"])
        state = self.fleets.get(key)
        if state is None:
            stored = fleet.get("status") or {}
            state = FleetState(published=dict(stored) if stored.get("conditions") else None)
            if "observedGeneration" in stored:
                state.applied_generation = int(stored["observedGeneration"])
            self.fleets[key] = state
        return state

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted fleet's state."""
        self.fleets.pop((namespace, name), None)

    def desired(self, fleet: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The fleet's desired children, rendered once per (uid, generation). Raises InvalidSpecError."""
        meta = fleet["metadata"]
        state = self.state(fleet)
        stamp = (str(meta.get("uid")), int(meta.get("generation") or 0))
        if state.rendered is None or state.rendered[:2] != stamp:
            state.rendered = (*stamp, desiring.desired_children(fleet))
        return state.rendered[2]
