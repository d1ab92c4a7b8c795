"""In-memory operator state shared by all handlers (kept in kopf's ``memo``): the API client and, per
fleet, the last published status, the status writer's inputs and a cache of the rendered children (kept
compressed: see :class:`Rendering`).

Nothing here is authoritative: after a restart it is rebuilt from the fleets' stored status, which is why
restarting the operator neither repeats Events nor loses track of applied generations.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.autoscaler.settings import AutoscalerSettings
from flotilla.controller import configuring
from flotilla.packing import plans
from flotilla.reconcile import desiring, keying, kube, planning, statuses, vetting

FleetKey = tuple[str, str]
"""(namespace, name)."""


@dataclasses.dataclass(frozen=True)
class Rendering:
    """One rendering of a fleet (uid, generation), each child as zlib-compressed JSON.

    Child events need one desired child at a time, and only when the fleet has not changed since the
    last render, so the cache holds bytes: about 2.5 KB per fleet instead of ~45 KB of dicts (measured
    on examples/02-realistic), and decoding one child costs tens of microseconds.
    """

    uid: str
    generation: int
    classifier: str | None
    """sha256 of the custom classifier the router config names (None: the packaged one)."""
    keys: str
    """``keying.Keys.fingerprint`` of the API key hashes rendered."""
    children: dict[planning.ChildKey, bytes]
    endpoint: str | None
    decisions: str = ""
    """``desiring.decisions`` of the status rendered: a promoted candidate changes the router config."""

    @classmethod
    def of(
        cls,
        uid: str,
        generation: int,
        classifier: str | None,
        keys: str,
        desired: list[dict[str, Any]],
        decisions: str = "",
    ) -> Rendering:
        children = {
            planning.child_key(m): zlib.compress(json.dumps(m, separators=(",", ":")).encode())
            for m in desired
        }
        return cls(uid, generation, classifier, keys, children, statuses.endpoint(desired), decisions)

    def child(self, key: planning.ChildKey) -> dict[str, Any] | None:
        """The desired child with this key, or None when the fleet does not want it."""
        packed = self.children.get(key)
        return None if packed is None else dict(json.loads(zlib.decompress(packed)))

    def all(self) -> list[dict[str, Any]]:
        """Every desired child, in rendering order."""
        return [dict(json.loads(zlib.decompress(packed))) for packed in self.children.values()]


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
    applied_decisions: str | None = None
    """``desiring.decisions`` of the status whose children were last applied (None: none yet by this
    process). Not the rendering's: a status write renders too (cached), without applying anything."""
    spec_error: str | None = None
    """Why the applied generation could not be rendered, if it could not."""
    spec_error_reason: str | None = None
    """The conditions' reason for ``spec_error``: InvalidSpec, NotAllowed (allow-lists) or ApplyRejected."""
    name_conflict: str | None = None
    """Why the generation was not applied: objects the fleet does not control have its children's names."""
    model_errors: dict[str, str] = dataclasses.field(default_factory=dict)
    """Models of the applied generation that cannot run as specified (an add-on missing), with why."""
    rendered: Rendering | None = None
    """The last rendering, so child events and status writes do not re-render."""
    classifier: vetting.Accepted | None = None
    """The custom classifier the router config names, the last accepted (seeded from status.classifier)."""
    classifier_verdict: vetting.Verdict | None = None
    """This process's last vetting of the spec's classifier; None before the first (status keeps its own)."""
    keys: keying.Keys = dataclasses.field(default_factory=keying.Keys)
    """The API key hashes last read from the Secrets spec.access names."""
    packing: plans.Plan | None = None
    """The packing plan of the applied generation; None before this process planned it."""


@dataclasses.dataclass
class Context:
    """The operator's shared objects; one per process."""

    kube: kube.Kube
    config: configuring.OperatorConfig
    autoscaler: AutoscalerSettings | None = None
    """The built-in autoscaler's settings; None when it is off (``--no-autoscaler``)."""
    fleets: dict[FleetKey, FleetState] = dataclasses.field(default_factory=dict)
    vetter: vetting.Vetter = dataclasses.field(default_factory=vetting.Vetter)
    """Checks fleets' own classifiers before they are rendered."""
    pods: Mapping[FleetKey, Iterable[statuses.PodTrouble]] = dataclasses.field(default_factory=dict)
    """kopf's live index of each fleet's pods in trouble: unplaceable or not starting (handlers set it)."""

    def pod_troubles(self, fleet: Mapping[str, Any]) -> list[statuses.PodTrouble]:
        """The fleet's pods in trouble, as the pods index has them now."""
        meta = fleet["metadata"]
        return list(self.pods.get((meta["namespace"], meta["name"]), []))

    def state(self, fleet: Mapping[str, Any]) -> FleetState:
        """The fleet's state, seeded from its stored status the first time this process sees it."""
        meta = fleet["metadata"]
        key = (meta["namespace"], meta["name"])
        state = self.fleets.get(key)
        if state is None:
            stored = fleet.get("status") or {}
            state = FleetState(published=dict(stored) if stored.get("conditions") else None)
            state.classifier = vetting.Accepted.from_status(stored.get("classifier"))
            if "observedGeneration" in stored:
                state.applied_generation = int(stored["observedGeneration"])
            self.fleets[key] = state
        return state

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted fleet's state."""
        self.fleets.pop((namespace, name), None)

    def desired(self, fleet: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The fleet's desired children, rendered once per (uid, generation, accepted classifier), with the
        accepted classifier in place of the spec's (``desiring.with_classifier``). Raises InvalidSpecError."""
        cached = self._cached(fleet)
        if cached is not None:
            return cached.all()
        state = self.state(fleet)
        accepted = state.classifier
        desired = desiring.desired_children(
            desiring.with_classifier(fleet, accepted.model() if accepted else None), state.keys.hashes
        )
        meta = fleet["metadata"]
        state.rendered = Rendering.of(
            str(meta.get("uid")),
            int(meta.get("generation") or 0),
            accepted.sha256 if accepted else None,
            state.keys.fingerprint,
            desired,
            desiring.decisions(fleet),
        )
        return desired

    def desired_child(self, fleet: Mapping[str, Any], key: planning.ChildKey) -> dict[str, Any] | None:
        """One desired child (None: not wanted), from the cached rendering. Raises InvalidSpecError."""
        cached = self._cached(fleet)
        if cached is None:
            self.desired(fleet)
            cached = self._cached(fleet)
        assert cached is not None  # rendered just now
        return cached.child(key)

    def endpoint(self, fleet: Mapping[str, Any]) -> str | None:
        """The router's in-cluster URL (see ``statuses.endpoint``). Raises InvalidSpecError."""
        cached = self._cached(fleet)
        if cached is None:
            return statuses.endpoint(self.desired(fleet))
        return cached.endpoint

    def _cached(self, fleet: Mapping[str, Any]) -> Rendering | None:
        meta = fleet["metadata"]
        state = self.state(fleet)
        rendered = state.rendered
        if rendered is None or (
            rendered.uid,
            rendered.generation,
            rendered.classifier,
            rendered.keys,
            rendered.decisions,
        ) != (
            str(meta.get("uid")),
            int(meta.get("generation") or 0),
            state.classifier.sha256 if state.classifier else None,
            state.keys.fingerprint,
            desiring.decisions(fleet),
        ):
            return None
        return rendered
