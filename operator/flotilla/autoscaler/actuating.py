"""The autoscaler's Kubernetes I/O: list fleets, find router pods, read and patch Deployment scale, write
status.autoscaling and Events. Synchronous calls on plain dicts; the loop runs them in threads.

Reuses the reconciler's :class:`flotilla.reconcile.kube.Kube` for credentials and Events, so the operator
hands the autoscaler the client it already has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.api import fleet as fleet_api
from flotilla.autoscaler import discovering
from flotilla.reconcile import kube as kubeapi
from flotilla.reconcile import owners
from flotilla.reconcile.kube import Kube

ApiError = kubeapi.ApiError
"""What every call here raises when the apiserver refuses or fails it."""


class Cluster:
    """What the autoscaler does to the cluster; one instance per operator process.

    Plain dicts from :class:`Kube` rather than the official client's typed APIs: the loop reads a few
    fields per fleet every tick, and building model objects for whole lists only to read them is what
    the operator's memory budget cannot afford at a hundred fleets.
    """

    def __init__(self, kube: Kube, field_manager: str) -> None:
        self.kube = kube
        self.field_manager = field_manager

    def list_fleets(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every ModelFleet body in ``namespaces`` (all namespaces when empty)."""
        group, version, plural = fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL
        if not namespaces:
            return self.kube.list_custom(group, version, plural)
        return [item for ns in namespaces for item in self.kube.list_custom(group, version, plural, ns)]

    def router_endpoints(self, namespace: str, service: str) -> list[str]:
        """Base URLs of the router Service's ready pods, from its EndpointSlices."""
        slices = self.kube.list(kubeapi.ENDPOINT_SLICE, namespace, discovering.slice_selector(service))
        return discovering.endpoints_from_slices(slices)

    def replicas(self, namespace: str, deployment: str, owner_uid: str) -> int | None:
        """The Deployment's spec.replicas; None when it does not exist or is not controlled by the fleet
        ``owner_uid`` (another fleet's, or nobody's: the reconciler reports the NameConflict)."""
        found = self.kube.get(kubeapi.DEPLOYMENT, namespace, deployment)
        if found is None or owners.controller_uid(found) != owner_uid:
            return None
        return int((found.get("spec") or {}).get("replicas") or 0)

    def scale(self, namespace: str, deployment: str, replicas: int, owner_uid: str) -> None:
        """Set spec.replicas, only while the fleet ``owner_uid`` controls the Deployment: the patch tests
        the owner reference in the same write (the fleet's children carry exactly one), so a Deployment
        replaced by someone else's between the read and the write is refused, not scaled."""
        path = kubeapi.DEPLOYMENT.item(namespace, deployment)
        self.kube.json_patch(
            path,
            [
                {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": owner_uid},
                {"op": "test", "path": "/metadata/ownerReferences/0/controller", "value": True},
                {"op": "replace", "path": "/spec/replicas", "value": replicas},
            ],
            self.field_manager,
        )

    def write_status(self, fleet: Mapping[str, Any], autoscaling: list[dict[str, Any]]) -> None:
        """Replace status.autoscaling (a merge patch: the reconciler's status fields stay untouched)."""
        meta = fleet["metadata"]
        path = kubeapi.custom_path(
            fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, meta["namespace"], meta["name"]
        )
        self.kube.merge_patch(path + "/status", {"status": {"autoscaling": autoscaling}}, self.field_manager)

    def event(self, fleet: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the fleet."""
        self.kube.post_event(fleet, type_, reason, message)
