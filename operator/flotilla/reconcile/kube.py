"""The operator's narrow view of the Kubernetes API: apply, list, get, delete and status, on plain dicts.

Everything the reconciler does to the cluster goes through :class:`Kube`, so tests and the benchmark use
the same code path as the operator. Writes are server-side apply (``PATCH`` with
``application/apply-patch+yaml``) under the single field manager ``flotilla`` with ``force=true``:
applying an unchanged manifest is a no-op on the server (resourceVersion stays), and fields someone else
changed are taken back.

Hand-written over ``kubernetes.dynamic.DynamicClient`` on purpose: the set of kinds is fixed (see
``KINDS``), so the dynamic client's discovery round-trips and cache files buy nothing; the official
client's ``ApiClient`` still does the authentication, TLS and connection pooling.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from flotilla import errors

FIELD_MANAGER = "flotilla"
"""The one field manager every Flotilla write uses (children and the fleet's status)."""

REPLICAS_FIELD_MANAGER = "flotilla-replicas"
"""Field manager of the replica counts Flotilla sets on Deployments it does not autoscale: a separate one,
so that ``kubectl scale`` can take ``spec.replicas`` over without the next apply taking it back."""

Manifest = dict[str, Any]
Manifests = list[Manifest]
"""(An alias: inside :class:`Kube`, ``list`` names its method.)"""


@dataclasses.dataclass(frozen=True)
class Kind:
    """A resource kind the operator manages: how to address it on the API."""

    api_version: str
    kind: str
    plural: str

    def collection(self, namespace: str) -> str:
        """The namespaced collection path, e.g. ``/apis/apps/v1/namespaces/ai/deployments``."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        """The path of one named object."""
        return f"{self.collection(namespace)}/{quote(name, safe='')}"


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
SERVICE = Kind("v1", "Service", "services")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
RAY_SERVICE = Kind("ray.io/v1", "RayService", "rayservices")
SECRET = Kind("v1", "Secret", "secrets")
"""Not a child: the API keys a fleet's spec.access names, read by name only (``reconcile.keying``)."""
JOB = Kind("batch/v1", "Job", "jobs")
"""Not a child the reconciler renders: a task's training Job, created by ``flotilla.training`` when enough
traces were captured, never pruned or restored."""
ENDPOINT_SLICE = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
"""Not a child: the autoscaler reads the router Service's slices to find its pods."""

CHILD_KINDS: tuple[Kind, ...] = (
    CONFIGMAP,
    SERVICE,
    DEPLOYMENT,
    HPA,
    PDB,
    SERVICE_ACCOUNT,
    ROLE,
    ROLE_BINDING,
)
"""Every kind a fleet renders into (the router's ServiceAccount, Role and RoleBinding included)."""

OPTIONAL_KINDS: tuple[Kind, ...] = (SCALED_OBJECT, RAY_SERVICE)
"""Kinds of add-ons a cluster may not have (KEDA, KubeRay): applied and listed only when the apiserver serves
them (``Kube.serves``), and not watched (a kopf watch on an unserved resource fails)."""

KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k for k in (*CHILD_KINDS, *OPTIONAL_KINDS, JOB)
}

APPLY_WAVES: tuple[frozenset[tuple[str, str]], ...] = (
    frozenset((k.api_version, k.kind) for k in (SERVICE_ACCOUNT, ROLE, CONFIGMAP, SERVICE)),
    frozenset(
        (k.api_version, k.kind) for k in (ROLE_BINDING, DEPLOYMENT, HPA, PDB, SCALED_OBJECT, RAY_SERVICE)
    ),
)
"""Children are applied in waves, each wave concurrently: a RoleBinding needs its Role to exist (the
apiserver checks the binder holds the Role's permissions), and pods need their ServiceAccount and
ConfigMap (else the ReplicaSet controller backs off before creating them)."""


class ApiError(errors.FlotillaError):
    """The apiserver refused or failed a request; ``retryable`` says whether trying again may help."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling, timeouts and server errors are transient; the rest need a changed input."""
        return self.status in (0, 409, 429) or self.status >= 500


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    """The :class:`Kind` of a manifest; an unknown kind is a bug in rendering, reported as a spec error."""
    key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
    if key not in KINDS:
        raise errors.InvalidSpecError(f"Flotilla does not manage objects of kind {key[0]}/{key[1]}")
    return KINDS[key]


CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to the apiserver."""

READ_TIMEOUT = 30.0
"""Seconds to wait for an answer (between bytes) on one API call. Without a bound, a connection the
apiserver (or a load balancer in between) silently dropped would block its worker thread forever; with
enough of them every worker, and the autoscaler's calls with them, would be stuck. A timed-out call is an
``ApiError`` with status 0 (retryable)."""


class Kube:
    """Synchronous, thread-safe calls on one ``ApiClient``; callers run them in a thread from async code.

    Every call is bounded by ``timeout`` (connect, read) seconds (see ``READ_TIMEOUT``)."""

    def __init__(
        self, api: k8s.ApiClient, timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)
    ) -> None:
        self.api = api
        self.timeout = timeout

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        pool_size: int = 16,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig (``$KUBECONFIG`` or default)."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            # $KUBECONFIG read now: the client library reads it once, when it is first imported
            path = kubeconfig or os.environ.get("KUBECONFIG") or None
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = pool_size
        # urllib3 would retry a timed-out read three times (4x READ_TIMEOUT); the reconciler retries itself.
        configuration.retries = urllib3.Retry(total=2, read=False, redirect=0)
        return cls(k8s.ApiClient(configuration), timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self.api.close()  # type: ignore[no-untyped-call]

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
    ) -> Manifest:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        try:
            response = self.api.call_api(*request, _request_timeout=self.timeout)
            response.read()  # type: ignore[no-untyped-call]
        except k8s.ApiException as exc:
            raise _api_error(exc.status or 0, str(exc.reason), exc.body) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, reset, timed out
            raise ApiError(0, "Unreachable", str(exc)) from None
        text = (response.data or b"").decode("utf-8")
        if not 200 <= response.status <= 299:
            raise _api_error(response.status, str(response.reason), text)
        return cast(Manifest, json.loads(text)) if text else {}

    def apply(self, manifest: Manifest, field_manager: str = FIELD_MANAGER) -> Manifest:
        """Server-side apply one child manifest (must carry namespace and name)."""
        meta = manifest["metadata"]
        return self._call(
            "PATCH", kind_of(manifest).item(meta["namespace"], meta["name"]),
            query=[("fieldManager", field_manager), ("force", "true")],
            body=manifest, content_type="application/apply-patch+yaml",
        )  # fmt: skip

    def get(self, kind: Kind, namespace: str, name: str) -> Manifest | None:
        """One object, or None when it does not exist."""
        try:
            return self._call("GET", kind.item(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def set_replicas(self, namespace: str, name: str, replicas: int, annotation: str | None) -> Manifest:
        """Server-side apply only a Deployment's ``spec.replicas`` and the ``annotation`` recording it (if
        any), under field manager ``flotilla-replicas`` (see ``applying.apply_child`` for why not
        ``flotilla``)."""
        metadata: Manifest = {"name": name, "namespace": namespace}
        if annotation is not None:
            metadata["annotations"] = {annotation: str(replicas)}
        patch = {
            "apiVersion": DEPLOYMENT.api_version, "kind": DEPLOYMENT.kind,
            "metadata": metadata, "spec": {"replicas": replicas},
        }  # fmt: skip
        return self._call(
            "PATCH", DEPLOYMENT.item(namespace, name),
            query=[("fieldManager", REPLICAS_FIELD_MANAGER), ("force", "true")],
            body=patch, content_type="application/apply-patch+yaml",
        )  # fmt: skip

    def list(self, kind: Kind, namespace: str, selector: str) -> list[Manifest]:
        """Objects of ``kind`` in ``namespace`` matching a label selector."""
        found = self._call("GET", kind.collection(namespace), query=[("labelSelector", selector)])
        items = cast(list[Manifest], found.get("items") or [])
        for item in items:  # list items omit these; planning keys objects by them
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def delete(self, kind: Kind, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete one object (background propagation); False if it was already gone.

        ``uid`` is a precondition so a same-named object created meanwhile is not deleted by mistake.
        """
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", kind.item(namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404 or (exc.status == 409 and uid):
                return False
            raise
        return True

    def serves_kind(self, kind: Kind) -> bool:
        """Whether the apiserver serves ``kind`` (discovery)."""
        group, _, version = kind.api_version.rpartition("/")
        return self.serves(group, version, kind.plural)

    def serves(self, group: str, version: str, plural: str) -> bool:
        """Whether the apiserver serves a resource (discovery; every authenticated user may ask)."""
        try:
            found = self._call("GET", f"/apis/{group}/{version}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in found.get("resources") or [])

    def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None) -> Manifests:
        """Custom objects in ``namespace``, or in every namespace when it is None."""
        where = "" if namespace is None else f"/namespaces/{quote(namespace, safe='')}"
        found = self._call("GET", f"/apis/{group}/{version}{where}/{plural}")
        return cast(Manifests, found.get("items") or [])

    def json_patch(self, path: str, operations: Manifests, field_manager: str) -> Manifest:
        """A JSON patch (RFC 6902) on ``path``; a failed ``test`` operation makes the apiserver refuse the
        whole patch (422), which is how a write gets a precondition."""
        return self._call(
            "PATCH", path, query=[("fieldManager", field_manager)], body=operations,
            content_type="application/json-patch+json",
        )  # fmt: skip

    def merge_patch(self, path: str, patch: Mapping[str, Any], field_manager: str) -> Manifest:
        """A JSON merge patch on ``path`` (an object or a subresource) under ``field_manager``."""
        return self._call(
            "PATCH", path, query=[("fieldManager", field_manager)], body=dict(patch),
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def get_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> Manifest | None:
        """One custom object, or None when it does not exist."""
        try:
            return self._call("GET", custom_path(group, version, plural, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def apply_status(self, owner: Mapping[str, Any], status: Mapping[str, Any], plural: str) -> Manifest:
        """Server-side apply the ``status`` of a custom object through its status subresource."""
        group, _, version = str(owner["apiVersion"]).partition("/")
        meta = owner["metadata"]
        patch = {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": dict(status),
        }
        return self._call(
            "PATCH", custom_path(group, version, plural, meta["namespace"], meta["name"]) + "/status",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=patch, content_type="application/apply-patch+yaml",
        )  # fmt: skip

    def post_event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Create a core/v1 Event about ``owner`` (a fleet), reported by component ``flotilla``."""
        meta = owner["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
            },
            "type": type_, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER, "reportingInstance": socket.gethostname()[:128],
        }  # fmt: skip
        self._call("POST", f"/api/v1/namespaces/{quote(meta['namespace'], safe='')}/events", body=event)


def terminating(exc: ApiError) -> bool:
    """True when the apiserver refused a create because the namespace is being deleted."""
    return exc.status == 403 and "being terminated" in str(exc)


def custom_path(group: str, version: str, plural: str, namespace: str, name: str) -> str:
    """The path of one namespaced custom object."""
    return f"/apis/{group}/{version}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"


def _api_error(status: int, reason: str, body: str | None) -> ApiError:
    """Prefer the apiserver's Status message (what a person needs) over the raw body."""
    message = body or ""
    try:
        decoded = json.loads(message)
        if isinstance(decoded, dict) and decoded.get("message"):
            message = str(decoded["message"])
    except ValueError:
        pass
    return ApiError(status, reason, message)
