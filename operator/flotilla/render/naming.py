"""Names, labels and selectors of every child object, and the router's endpoint URL.

The reconciler uses these to find and garbage-collect children (e.g. a removed model's Deployment by its
`flotilla.dev/model` label), so they are stable API: change them only with a migration.
"""

from __future__ import annotations

import re

from flotilla.api.fleet import FallbackSpec, ModelFleet, ModelSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
FLEET = "flotilla.dev/fleet"
MODEL = "flotilla.dev/model"
COMPONENT = "flotilla.dev/component"
RUNTIME = "flotilla.dev/runtime"
PACK = "flotilla.dev/pack"
"""On a pack's children and pods: the planned pod's name (status.packs[].name, e.g. auto-1)."""
PACK_MODELS = "flotilla.dev/pack-models"
"""Annotation on a pack Deployment: its models, comma-separated (status reads each model's replicas)."""
MANAGER = "flotilla"
INITIAL_REPLICAS = "flotilla.dev/initial-replicas"
"""On an autoscaled model's Deployment, which renders no `spec.replicas`: the count it is created with (the
model's `replicas.min`), so a model at min 0 starts no pod before its first request."""

ROUTER_PORT = 8080
ROUTER_ADMIN_PORT = 9090
"""The router's /metrics and /upstreams: a port of its own, only on the ClusterIP admin Service."""
MODEL_SERVICE_PORT = 8080
PACK_PORT = 8000
"""The container port of a pack pod (pack-serve's and Ray Serve's default)."""
PACK_CONFIG_DIR = "/etc/flotilla-pack"
CONFIG_MOUNT_DIR = "/etc/flotilla"
SPEND_MOUNT_DIR = "/etc/flotilla-spend"
SPOOL_MOUNT_DIR = "/var/spool/flotilla"  # the router's trace spool (an emptyDir)
TRACES_MOUNT_DIR = "/var/lib/flotilla-traces"  # a volume sink's PersistentVolumeClaim
SINK_ACCESS_KEY_ENV = "FLOTILLA_SINK_ACCESS_KEY_ID"
SINK_SECRET_KEY_ENV = "FLOTILLA_SINK_SECRET_ACCESS_KEY"


def _name(model: ModelSpec | str) -> str:
    return model if isinstance(model, str) else model.name


def model_deployment_name(fleet: ModelFleet, model: ModelSpec | str) -> str:
    """`<fleet>-<model>`: the model's Deployment (its Service, HPA, ScaledObject and PDB share the name)."""
    return f"{fleet.name}-{_name(model)}"


model_service_name = model_deployment_name
model_hpa_name = model_deployment_name
model_scaled_object_name = model_deployment_name
model_pdb_name = model_deployment_name


def pack_name(fleet: ModelFleet, pod: str) -> str:
    """`<fleet>-pack-<pod>` (pod: the plan's `<pack>-<n>`): the pack's Deployment, Service and ConfigMap."""
    return f"{fleet.name}-pack-{pod}"


def pack_labels(fleet: ModelFleet, pod: str) -> dict[str, str]:
    """Labels on a pack's children and pods."""
    return {**fleet_labels(fleet, "pack"), PACK: pod, RUNTIME: "ray"}


def pack_selector(fleet: ModelFleet, pod: str) -> dict[str, str]:
    """Selects one pack's pods (immutable in a Deployment: never add keys)."""
    return {FLEET: fleet.name, COMPONENT: "pack", PACK: pod}


def router_name(fleet: ModelFleet) -> str:
    """`<fleet>-router`: the router's Deployment, Service, ConfigMap, ServiceAccount, Role and RoleBinding."""
    return f"{fleet.name}-router"


def router_admin_name(fleet: ModelFleet) -> str:
    """`<fleet>-router-admin`: the ClusterIP Service of the routers' admin port (metrics, upstreams)."""
    return f"{fleet.name}-router-admin"


def router_spend_name(fleet: ModelFleet) -> str:
    """`<fleet>-router-spend`: the ConfigMap of cloud spend per API key the operator writes (not rendered:
    owned by the spend collector, so applying the fleet never resets it)."""
    return f"{fleet.name}-router-spend"


def router_endpoint(fleet: ModelFleet) -> str:
    """The in-cluster OpenAI base URL of the fleet's router."""
    return f"http://{router_name(fleet)}.{fleet.namespace}.svc:{ROUTER_PORT}/v1"


def api_key_env(fallback: FallbackSpec | str) -> str:
    """Env var in the router pod holding a fallback's API key (from its Secret)."""
    name = fallback if isinstance(fallback, str) else fallback.name
    return "FLOTILLA_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def fleet_labels(fleet: ModelFleet, component: str) -> dict[str, str]:
    """Labels on every child of the fleet."""
    return {MANAGED_BY: MANAGER, PART_OF: "flotilla", FLEET: fleet.name, COMPONENT: component}


def model_labels(fleet: ModelFleet, model: ModelSpec) -> dict[str, str]:
    """Labels on a model's children and pods."""
    return {**fleet_labels(fleet, "model"), MODEL: model.name, RUNTIME: model.runtime}


def model_selector(fleet: ModelFleet, model: ModelSpec | str) -> dict[str, str]:
    """Selects one model's pods (immutable in a Deployment: never add keys)."""
    return {FLEET: fleet.name, COMPONENT: "model", MODEL: _name(model)}


def router_selector(fleet: ModelFleet) -> dict[str, str]:
    """Selects the router's pods."""
    return {FLEET: fleet.name, COMPONENT: "router"}


def children_selector(fleet: ModelFleet) -> str:
    """Label selector (string form) matching every child of the fleet."""
    return f"{MANAGED_BY}={MANAGER},{FLEET}={fleet.name}"
