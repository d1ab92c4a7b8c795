"""Planning: desired children vs observed children → what to apply and what to prune. Pure, no I/O.

The applier executes a :class:`Plan`; everything that decides *what* happens lives here so it can be
tested table-driven without a cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from flotilla.reconcile import owners
from flotilla.render import naming

Manifest = dict[str, Any]
ChildKey = tuple[str, str, str]
"""(apiVersion, kind, name): identifies a child within its fleet's namespace."""

MANAGED_BY = naming.MANAGED_BY
FLEET_LABEL = naming.FLEET
MODEL_LABEL = naming.MODEL
COMPONENT_LABEL = naming.COMPONENT
PACK_MODELS = naming.PACK_MODELS
PACK_LABEL = naming.PACK
MANAGER = naming.MANAGER


def child_key(manifest: Mapping[str, Any]) -> ChildKey:
    """The identity of a child: the same object across desired and observed lists."""
    return (str(manifest.get("apiVersion")), str(manifest.get("kind")), str(manifest["metadata"]["name"]))


def fleet_selector(fleet_name: str) -> str:
    """Label selector for every child of one fleet (what pruning lists)."""
    return f"{MANAGED_BY}={MANAGER},{FLEET_LABEL}={fleet_name}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one reconcile does: apply every desired child (server-side apply makes unchanged ones no-ops)
    and delete observed children that are no longer desired."""

    apply: tuple[Manifest, ...]
    prune: tuple[Manifest, ...]

    @property
    def empty(self) -> bool:
        """True when there is nothing to apply or delete."""
        return not self.apply and not self.prune


def plan(desired: Iterable[Manifest], observed: Iterable[Manifest], owner_uid: str) -> Plan:
    """Apply all of ``desired``; prune observed children whose key is not desired.

    Observed objects come from a list by the fleet's labels, but a label is no proof of ownership (anyone
    can set it, and a fleet deleted and recreated under the same name leaves children of the old uid
    until they are garbage-collected): only objects whose controller is ``owner_uid`` are pruned. An
    object being deleted already (``deletionTimestamp``) is not pruned twice.
    """
    wanted = list(desired)
    dupes = duplicates(wanted)
    if dupes:
        raise ValueError(f"rendering produced duplicate children: {', '.join(dupes)}")
    keys = {child_key(m) for m in wanted}
    prune = tuple(
        o
        for o in observed
        if child_key(o) not in keys
        and not o.get("metadata", {}).get("deletionTimestamp")
        and owners.controller_uid(o) == owner_uid
    )
    return Plan(apply=tuple(wanted), prune=prune)


def duplicates(manifests: Sequence[Manifest]) -> list[str]:
    """Children rendered twice (same kind and name), as ``apiVersion/kind/name``; none for a valid fleet.

    The API rules out every way one fleet could render a name twice (model names unique, ``router``
    reserved, the fleet's name a prefix of all), so this only guards against a rendering bug.
    """
    keys = [child_key(m) for m in manifests]
    return sorted({"/".join(k) for k in keys if keys.count(k) > 1})


def needs_listing(fleet: Mapping[str, Any]) -> bool:
    """Whether a reconcile must list existing children (to prune what is no longer desired).

    At generation 1 the fleet has only ever had one spec, so nothing it rendered can be unwanted now; the
    lists are skipped, which saves a round trip per child kind on every new fleet. Leftovers of an
    earlier fleet with the same name belong to another uid and are garbage-collected; objects an older
    operator version rendered and this one does not are pruned at the fleet's next spec change.
    """
    return int(fleet.get("metadata", {}).get("generation") or 0) != 1


def find(desired: Iterable[Manifest], key: ChildKey) -> Manifest | None:
    """The desired manifest with this key, or None when the child is no longer wanted."""
    return next((m for m in desired if child_key(m) == key), None)


def drifted(desired: Any, observed: Any) -> bool:
    """True when ``observed`` does not contain ``desired``: a field we set was changed or removed.

    Containment, not equality: the apiserver adds defaults (clusterIP, protocol, status) and other
    controllers add fields we do not own. Quantities the server re-spells (``0.5`` → ``500m``) compare
    unequal; that only costs one no-op apply, which the server does not turn into a write.
    """
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return True
        return any(drifted(value, observed.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return True
        return any(drifted(d, o) for d, o in zip(desired, observed, strict=True))
    if isinstance(desired, bool) or isinstance(observed, bool):
        return desired is not observed
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(desired) != float(observed)
    return bool(desired != observed)


def spec_drifted(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    """Drift in what Flotilla owns: labels, annotations and the spec/data (never status, never metadata
    the server manages)."""
    d_meta, o_meta = desired.get("metadata", {}), observed.get("metadata", {})
    for field in ("labels", "annotations"):
        if drifted(d_meta.get(field) or {}, o_meta.get(field) or {}):
            return True
    body_fields = [k for k in desired if k not in ("apiVersion", "kind", "metadata", "status")]
    return any(drifted(desired[k], observed.get(k)) for k in body_fields)


def waves(
    manifests: Iterable[Manifest], order: Sequence[Collection[tuple[str, str]]]
) -> list[list[Manifest]]:
    """Split manifests into apply waves: wave i holds the (apiVersion, kind) pairs in ``order[i]``
    (anything unlisted goes last), each wave in input order; empty waves are dropped."""
    buckets: list[list[Manifest]] = [[] for _ in range(len(order) + 1)]
    for manifest in manifests:
        key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
        index = next((i for i, kinds in enumerate(order) if key in kinds), -1)
        buckets[index].append(manifest)
    return [bucket for bucket in buckets if bucket]
