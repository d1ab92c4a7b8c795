"""Applying: execute a plan against the cluster — apply children, prune the unwanted, restore drift.

Async on the outside (kopf handlers await it), the synchronous :class:`~flotilla.reconcile.kube.Kube`
calls run in worker threads. Children of one fleet are applied concurrently: they do not depend on each
other within a wave (see ``kube.APPLY_WAVES``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flotilla import errors
from flotilla.reconcile import kube as kubeapi
from flotilla.reconcile import owners, planning, statuses
from flotilla.render import naming

Manifest = dict[str, Any]

REPLICAS_ANNOTATION = "flotilla.dev/replicas"
"""On Deployments whose replica count the fleet fixes: the count Flotilla last set."""


def without_replicas(manifest: Manifest) -> tuple[Manifest, int | None]:
    """A Deployment manifest without its rendered ``spec.replicas``, and that count (None when not
    rendered: an autoscaler owns it)."""
    spec = manifest.get("spec") or {}
    if manifest.get("kind") != kubeapi.DEPLOYMENT.kind or "replicas" not in spec:
        return manifest, None
    return {**manifest, "spec": {k: v for k, v in spec.items() if k != "replicas"}}, int(spec["replicas"])


def initial_replicas(manifest: Manifest) -> int | None:
    """The count an autoscaled Deployment is created with (``naming.INITIAL_REPLICAS``), else None."""
    if manifest.get("kind") != kubeapi.DEPLOYMENT.kind:
        return None
    value = ((manifest.get("metadata") or {}).get("annotations") or {}).get(naming.INITIAL_REPLICAS)
    return None if value is None else int(value)


async def apply_child(kube: kubeapi.Kube, manifest: Manifest, current: Mapping[str, Any] | None) -> Manifest:
    """Server-side apply one child; ``current`` is the object as it exists (None: it does not).

    A Deployment's rendered replica count (``autoscaling.mode: none``, ``min == max``, the router) is the
    count it is created with and reset to when the fleet's count changes; in between ``kubectl scale``
    sticks. So ``spec.replicas`` is set under its own field manager (``flotilla-replicas``) only when the
    count recorded in the ``flotilla.dev/replicas`` annotation differs from the rendered one, and the main
    apply (manager ``flotilla``) leaves it out once the Deployment exists.

    An autoscaled Deployment renders no count: it is created with its initial one (``replicas.min``, not
    the Kubernetes default 1, so a model at min 0 starts no pod before its first request), handed over the
    same way, and from then on the autoscaler alone changes it.
    """
    main, replicas = without_replicas(manifest)
    if current is None and replicas is not None:
        return await _create_with(kube, main, replicas, REPLICAS_ANNOTATION)
    if current is None and (initial := initial_replicas(manifest)) is not None:
        return await _create_with(kube, main, initial, None)  # from now on the autoscaler's count
    if current is None or replicas is None:
        return await asyncio.to_thread(_stamp, kube.apply, manifest)
    meta = manifest["metadata"]
    result = await asyncio.to_thread(_stamp, kube.apply, main)
    recorded = (current.get("metadata", {}).get("annotations") or {}).get(REPLICAS_ANNOTATION)
    if recorded != str(replicas):
        result = await asyncio.to_thread(
            _stamp, kube.set_replicas, meta["namespace"], meta["name"], replicas, REPLICAS_ANNOTATION
        )
    return result


async def _create_with(kube: kubeapi.Kube, main: Manifest, count: int, annotation: str | None) -> Manifest:
    """Create a Deployment with ``count`` replicas (not the default 1), hand ``spec.replicas`` to the
    ``flotilla-replicas`` manager, then re-apply without it, so later applies of ``main`` change nothing."""
    meta = main["metadata"]
    await asyncio.to_thread(_stamp, kube.apply, {**main, "spec": {**main["spec"], "replicas": count}})
    await asyncio.to_thread(_stamp, kube.set_replicas, meta["namespace"], meta["name"], count, annotation)
    return await asyncio.to_thread(_stamp, kube.apply, main)


def _stamp(call: Callable[..., Manifest], *args: Any) -> Manifest:
    """Run a write in the worker thread and keep only the identity of what it returned.

    The apiserver answers a write with the whole object, managed fields included; a reconcile only needs
    the resourceVersion. Dropping the rest in the thread means a burst of fleets, whose applies wait in
    ``asyncio.gather`` for their wave, holds a few bytes per child instead of the decoded objects.
    """
    meta = call(*args).get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta}}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one reconcile did: children applied, which of them changed (None when the children were not
    listed first, see ``planning.needs_listing``), and children pruned."""

    applied: int
    changed: tuple[planning.ChildKey, ...] | None
    pruned: tuple[planning.ChildKey, ...]
    unserved: dict[str, str] = dataclasses.field(default_factory=dict)
    """Models whose children the apiserver cannot take (an add-on such as KEDA missing), with why."""

    def describe(self) -> str:
        """One line for the log."""
        if self.changed is None:
            return f"{self.applied} children applied (first generation: nothing to prune)"
        unchanged = self.applied - len(self.changed)
        return f"{len(self.changed)} children changed, {unchanged} unchanged, {len(self.pruned)} pruned"


async def observe(
    kube: kubeapi.Kube, namespace: str, fleet_name: str, optional: Sequence[kubeapi.Kind] = ()
) -> list[Manifest]:
    """Every child of the fleet that exists now, listed by the fleet's labels (one list per kind; of the
    optional kinds only those given, which the caller knows are served)."""
    selector = planning.fleet_selector(fleet_name)
    kinds = (*kubeapi.CHILD_KINDS, *optional)
    found = await asyncio.gather(*(asyncio.to_thread(kube.list, kind, namespace, selector) for kind in kinds))
    return [item for items in found for item in items]


ADDONS = {
    kubeapi.SCALED_OBJECT: ("KEDA (autoscaling.mode keda)", "nothing scales this model; install it or use "
                            "autoscaling.mode builtin"),
    kubeapi.RAY_SERVICE: ("KubeRay (spec.packs[].engine kuberay)", "nothing serves this model; install "
                          "KubeRay or use engine pod"),
}  # fmt: skip
"""Per optional kind: the add-on that serves it, and what its absence means for the model."""


async def served_optional_kinds(kube: kubeapi.Kube) -> list[kubeapi.Kind]:
    """The optional kinds (``kube.OPTIONAL_KINDS``) the apiserver serves now (one discovery call each)."""
    served = await asyncio.gather(*(asyncio.to_thread(kube.serves_kind, k) for k in kubeapi.OPTIONAL_KINDS))
    return [k for k, yes in zip(kubeapi.OPTIONAL_KINDS, served, strict=True) if yes]


def drop_unserved(
    desired: Sequence[Manifest], served: Sequence[kubeapi.Kind]
) -> tuple[list[Manifest], dict[str, str]]:
    """Desired children minus those of optional kinds not served, and per model why it lacks them."""
    kept: list[Manifest] = []
    unserved: dict[str, str] = {}
    for manifest in desired:
        kind = kubeapi.kind_of(manifest)
        if kind in kubeapi.OPTIONAL_KINDS and kind not in served:
            meta = manifest["metadata"]
            addon, consequence = ADDONS[kind]
            why = (
                f"{addon} is not installed: the apiserver does not serve {kind.plural}.{kind.api_version}, "
                f"so {kind.kind} {meta['name']} cannot be applied and {consequence}"
            )
            packed = str((meta.get("annotations") or {}).get(planning.PACK_MODELS, ""))
            for model in (
                packed.split(",") if packed else [(meta.get("labels") or {}).get(planning.MODEL_LABEL, "")]
            ):
                unserved[model] = why
            continue
        kept.append(manifest)
    return kept, unserved


async def reconcile_children(
    kube: kubeapi.Kube, fleet: Mapping[str, Any], desired: Sequence[Manifest]
) -> Outcome:
    """Apply every desired child with the fleet as owner, then delete its children no longer desired.

    Nothing is written when an object the fleet does not control has a child's name: that raises
    ``errors.NameConflictError`` naming each such object and its controller (see ``owners.conflict``).
    """
    namespace, name = fleet["metadata"]["namespace"], fleet["metadata"]["name"]
    uid = str(fleet["metadata"]["uid"])
    optional = {kubeapi.kind_of(m) for m in desired} & set(kubeapi.OPTIONAL_KINDS)
    listing = planning.needs_listing(fleet)
    served = await served_optional_kinds(kube) if optional or listing else []
    kept, unserved = drop_unserved(desired, served)
    wanted = [owners.owned(m, fleet) for m in kept]
    observed = await observe(kube, namespace, name, served) if listing else []
    current = await existing(kube, wanted, observed)
    conflicts = [c for m in wanted if (c := owners.conflict(m, current[planning.child_key(m)], uid))]
    if conflicts:
        raise errors.NameConflictError(conflicts)
    step = planning.plan(wanted, observed, uid)
    before = {planning.child_key(o): o["metadata"].get("resourceVersion") for o in observed}
    changed: list[planning.ChildKey] = []
    for wave in planning.waves(step.apply, kubeapi.APPLY_WAVES):
        applied = await asyncio.gather(*(apply_child(kube, m, current[planning.child_key(m)]) for m in wave))
        changed += [
            planning.child_key(m)
            for m, result in zip(wave, applied, strict=True)
            if before.get(planning.child_key(m)) != result.get("metadata", {}).get("resourceVersion")
        ]
    for child in step.prune:
        meta = child["metadata"]
        await asyncio.to_thread(kube.delete, kubeapi.kind_of(child), namespace, meta["name"], meta.get("uid"))
    return Outcome(
        applied=len(step.apply),
        changed=tuple(changed) if listing else None,
        pruned=tuple(planning.child_key(c) for c in step.prune),
        unserved=unserved,
    )


async def existing(
    kube: kubeapi.Kube, wanted: Sequence[Manifest], observed: Sequence[Manifest]
) -> dict[planning.ChildKey, Manifest | None]:
    """The object that has each wanted child's name now (None: there is none), to check before any write
    that it is the fleet's own and to tell ``apply_child`` whether it exists.

    Children in ``observed`` (listed by the fleet's labels) need no request; any other is one GET: every
    child of a new fleet (generation 1 lists nothing), on later generations only the added ones, so an
    unchanged fleet's resume costs nothing more. All GETs run at once, before the first wave: about one
    round trip per new fleet.
    """
    known: dict[planning.ChildKey, Manifest | None] = {planning.child_key(o): o for o in observed}
    missing = [m for m in wanted if planning.child_key(m) not in known]
    found = await asyncio.gather(*(asyncio.to_thread(_head, kube, m) for m in missing))
    known.update((planning.child_key(m), f) for m, f in zip(missing, found, strict=True))
    return known


def _head(kube: kubeapi.Kube, manifest: Manifest) -> Manifest | None:
    """GET the object with ``manifest``'s kind and name, keeping its identity and metadata (not the
    managed fields, the spec or status: ownership and ``apply_child`` read only metadata)."""
    meta = manifest["metadata"]
    found = kube.get(kubeapi.kind_of(manifest), meta["namespace"], meta["name"])
    if found is None:
        return None
    head = {k: v for k, v in (found.get("metadata") or {}).items() if k != "managedFields"}
    return {"apiVersion": manifest.get("apiVersion"), "kind": manifest.get("kind"), "metadata": head}


async def restore_child(
    kube: kubeapi.Kube,
    fleet: Mapping[str, Any],
    desired: Sequence[Manifest],
    child: Mapping[str, Any],
    deleted: bool,
) -> statuses.Notice | None:
    """Put one child back when it was deleted or its owned fields drifted; a Notice says what happened.

    Only the fleet's own children (its uid their controller) are restored: not children no longer
    desired (a removed model being pruned), not children of another fleet incarnation (same name,
    different uid), not objects someone else made with the fleet's labels. A deleted child is recreated
    only if no object the fleet does not control has taken its name meanwhile.
    """
    key = planning.child_key(child)
    wanted = planning.find(desired, key)
    uid = str(fleet["metadata"]["uid"])
    if wanted is None or owners.controller_uid(child) != uid:
        return None
    if not deleted and not planning.spec_drifted(without_replicas(wanted)[0], child):
        return None  # a changed replica count alone is not drift (kubectl scale, see apply_child)
    current: Mapping[str, Any] | None = dict(child)
    if deleted:
        current = await asyncio.to_thread(_head, kube, wanted)
        conflict = owners.conflict(wanted, current, uid)
        if conflict is not None:
            return statuses.Notice("Warning", "NameConflict", f"not recreated: {conflict}")
    await apply_child(kube, owners.owned(wanted, fleet), current)
    what = f"{key[1]} {key[2]}"
    if deleted:
        return statuses.Notice("Normal", "ChildRecreated", f"{what} was deleted; recreated it")
    return statuses.Notice("Normal", "ChildRestored", f"{what} was changed outside the fleet; restored it")


async def publish_status(
    kube: kubeapi.Kube, fleet: Mapping[str, Any], status: Mapping[str, Any], plural: str
) -> None:
    """Write the fleet's status through the status subresource (server-side apply, manager flotilla)."""
    await asyncio.to_thread(kube.apply_status, fleet, status, plural)
