"""The fleet's router: ConfigMap with the routing table, Deployment, Service, PDB and the namespaced RBAC
it needs to discover model pods from EndpointSlices. API keys reach it only as env from `secretKeyRef`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from flotilla.api import routerconfig as rc
from flotilla.api.fleet import ModelFleet
from flotilla.render import models, naming, routing
from flotilla.render.settings import RenderSettings
from flotilla.runtimes import base

# libyaml's emitter when present: the pure-Python one made this ConfigMap 95% of the render time (~38 ms).
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def config_map(fleet: ModelFleet, key_hashes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The routing table as YAML under `router.yaml` (API keys only as their sha256)."""
    table = routing.render_router_config(fleet, key_hashes).to_wire()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": models.metadata(fleet, naming.router_name(fleet), naming.fleet_labels(fleet, "router")),
        "data": {rc.CONFIG_KEY: yaml.dump(table, Dumper=_DUMPER, sort_keys=False)},
    }


def _api_key_env(fleet: ModelFleet) -> list[dict[str, Any]]:
    env = []
    for fallback in fleet.spec.fallbacks:
        if fallback.api_key is not None and fallback.api_key.secret_key_ref is not None:
            ref = fallback.api_key.secret_key_ref
            secret = {"name": ref.name, "key": ref.key}
            env.append({"name": naming.api_key_env(fallback), "valueFrom": {"secretKeyRef": secret}})
    return env


def _capture_mounts(
    fleet: ModelFleet, env: list[dict[str, Any]], mounts: list[dict[str, Any]], volumes: list[dict[str, Any]]
) -> None:
    """The trace spool (an emptyDir of spoolMiB), the sink's credentials as env or its volume."""
    spec = fleet.spec.distillation
    if spec is None:
        return
    mounts.append({"name": "spool", "mountPath": naming.SPOOL_MOUNT_DIR})
    volumes.append({"name": "spool", "emptyDir": {"sizeLimit": f"{spec.spool_mib}Mi"}})
    s3, volume = spec.sink.s3, spec.sink.volume
    if s3 is not None:
        for name, ref in ((naming.SINK_ACCESS_KEY_ENV, s3.access_key_id),
                          (naming.SINK_SECRET_KEY_ENV, s3.secret_access_key)):  # fmt: skip
            env.append(base.secret_env(name, ref))
    if volume is not None:
        mount = {"name": "traces", "mountPath": naming.TRACES_MOUNT_DIR}
        if volume.sub_path:
            mount["subPath"] = volume.sub_path
        mounts.append(mount)
        volumes.append({"name": "traces", "persistentVolumeClaim": {"claimName": volume.claim_name}})


def deployment(fleet: ModelFleet, settings: RenderSettings) -> dict[str, Any]:
    """Router pods running `flotilla router` on the mounted routing table."""
    spec = fleet.spec.router
    name = naming.router_name(fleet)
    labels = naming.fleet_labels(fleet, "router")
    config_path, port = f"{naming.CONFIG_MOUNT_DIR}/{rc.CONFIG_KEY}", str(naming.ROUTER_PORT)
    command = ["flotilla", "router", "--config", config_path, "--host", "0.0.0.0", "--port", port]
    command += ["--admin-port", str(naming.ROUTER_ADMIN_PORT)]
    env: list[dict[str, Any]] = [{"name": "HOME", "value": "/tmp"}, *_api_key_env(fleet)]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": naming.CONFIG_MOUNT_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": name}},
        {"name": "tmp", "emptyDir": {}},
    ]
    _capture_mounts(fleet, env, mounts, volumes)
    if fleet.spec.access is not None:  # the replica id in the spend counter; the operator's spend totals
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        mounts.append({"name": "spend", "mountPath": naming.SPEND_MOUNT_DIR, "readOnly": True})
        spend_map = {"name": naming.router_spend_name(fleet), "optional": True}
        volumes.append({"name": "spend", "configMap": spend_map})
    container = {
        "name": "router",
        "image": spec.image or settings.router_image,
        "imagePullPolicy": settings.runtimes.image_pull_policy,
        "command": command,
        "env": env,
        "ports": [
            {"name": "http", "containerPort": naming.ROUTER_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": naming.ROUTER_ADMIN_PORT, "protocol": "TCP"},
        ],
        "resources": spec.resources.to_k8s(),
        "securityContext": base.container_security_context(),
        "volumeMounts": mounts,
        "readinessProbe": base.http_probe("/readyz", period=5, failures=3),
        "livenessProbe": base.http_probe("/healthz", period=15, failures=4, delay=5),
    }
    pod_spec = {
        "serviceAccountName": name,
        "automountServiceAccountToken": bool(fleet.spec.models),  # only discovery needs the API
        "enableServiceLinks": False,
        "securityContext": base.pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        # With capture: uvicorn's 30 s of graceful shutdown, then up to 20 s of flushing the spool.
        **({"terminationGracePeriodSeconds": 60} if fleet.spec.distillation else {}),
        **models.scheduling(spec.node_selector, [t.to_k8s() for t in spec.tolerations]),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": models.metadata(fleet, name, labels),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": naming.router_selector(fleet)},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def service(fleet: ModelFleet) -> dict[str, Any]:
    """The fleet's OpenAI endpoint (`naming.router_endpoint`)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": models.metadata(fleet, naming.router_name(fleet), naming.fleet_labels(fleet, "router")),
        "spec": {
            "type": fleet.spec.router.service_type,
            "selector": naming.router_selector(fleet),
            "ports": [{"name": "http", "port": naming.ROUTER_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def admin_service(fleet: ModelFleet) -> dict[str, Any]:
    """The routers' admin port (/metrics, /upstreams), always ClusterIP: what the autoscaler, the spend
    collector and Prometheus read, never exposed with the API."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": models.metadata(
            fleet, naming.router_admin_name(fleet), naming.fleet_labels(fleet, "router")
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.router_selector(fleet),
            "ports": [
                {"name": "admin", "port": naming.ROUTER_ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"}
            ],
        },
    }


def rbac(fleet: ModelFleet) -> list[dict[str, Any]]:
    """ServiceAccount, plus Role (read EndpointSlices in the fleet's namespace) and RoleBinding when the
    fleet has models whose pods the router discovers."""
    name = naming.router_name(fleet)
    labels = naming.fleet_labels(fleet, "router")
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": models.metadata(fleet, name, labels)}
    if not fleet.spec.models:
        return [account]
    rules = [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    return [
        account,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": models.metadata(fleet, name, labels),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": models.metadata(fleet, name, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": fleet.namespace}],
        },
    ]


def render_router(
    fleet: ModelFleet, settings: RenderSettings, key_hashes: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every router child, in a stable order."""
    objects = [
        *rbac(fleet),
        config_map(fleet, key_hashes),
        deployment(fleet, settings),
        service(fleet),
        admin_service(fleet),
    ]
    if fleet.spec.router.replicas > 1:
        name = naming.router_name(fleet)
        objects.append(
            models.pdb(fleet, name, naming.fleet_labels(fleet, "router"), naming.router_selector(fleet))
        )
    return objects
