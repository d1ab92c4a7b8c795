"""The autoscaler's Kubernetes I/O: list fleets, find router pods, read and patch Deployment scale, write
status.autoscaling and Events. Synchronous calls on the official client; the loop runs them in threads.

Reuses the reconciler's :class:`flotilla.reconcile.kube.Kube` for credentials and Events, so the operator
hands the autoscaler the client it already has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from flotilla.api import fleet as fleet_api
from flotilla.autoscaler import discovering
from flotilla.reconcile.kube import Kube


class Cluster:
    """What the autoscaler does to the cluster; one instance per operator process."""

    def __init__(self, kube: Kube, field_manager: str) -> None:
        self.kube = kube
        self.field_manager = field_manager
        self._apps = k8s.AppsV1Api(kube.api)
        self._custom = k8s.CustomObjectsApi(kube.api)
        self._discovery = k8s.DiscoveryV1Api(kube.api)

    def list_fleets(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every ModelFleet body in ``namespaces`` (all namespaces when empty)."""
        group, version, plural = fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL
        if not namespaces:
            listed = self._custom.list_cluster_custom_object(group, version, plural)
            return list(listed["items"])  # type: ignore[index]
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            listed = self._custom.list_namespaced_custom_object(group, version, namespace, plural)
            items += listed["items"]  # type: ignore[index]
        return items

    def router_endpoints(self, namespace: str, service: str) -> list[str]:
        """Base URLs of the router Service's ready pods, from its EndpointSlices."""
        slices = self._discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=discovering.slice_selector(service)
        )
        plain = self.kube.api.sanitize_for_serialization(slices.items)  # type: ignore[no-untyped-call]
        return discovering.endpoints_from_slices(plain)

    def replicas(self, namespace: str, deployment: str) -> int | None:
        """The Deployment's spec.replicas through its scale subresource; None when it does not exist."""
        try:
            scale = self._apps.read_namespaced_deployment_scale(deployment, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return int(scale.spec.replicas or 0) if scale.spec is not None else 0

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        """Set spec.replicas through the scale subresource (what `kubectl scale` and the HPA do)."""
        self._apps.patch_namespaced_deployment_scale(
            deployment, namespace, {"spec": {"replicas": replicas}}, field_manager=self.field_manager
        )

    def write_status(self, fleet: Mapping[str, Any], autoscaling: list[dict[str, Any]]) -> None:
        """Replace status.autoscaling (a merge patch: the reconciler's status fields stay untouched)."""
        meta = fleet["metadata"]
        self._custom.patch_namespaced_custom_object_status(
            fleet_api.GROUP, fleet_api.VERSION, meta["namespace"], fleet_api.PLURAL, meta["name"],
            {"status": {"autoscaling": autoscaling}},
            field_manager=self.field_manager, _content_type="application/merge-patch+json",
        )  # fmt: skip

    def event(self, fleet: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the fleet."""
        self.kube.post_event(fleet, type_, reason, message)
