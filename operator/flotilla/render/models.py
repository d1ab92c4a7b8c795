"""A fleet model's children: Deployment, Service, HorizontalPodAutoscaler (mode hpa, min < max), KEDA
ScaledObject (mode keda, min < max) and PodDisruptionBudget (more than one replica). The runtime module
builds the containers; this module adds what every runtime shares: labels, replicas, GPU scheduling,
security context.
"""

from __future__ import annotations

from typing import Any

from flotilla import runtimes
from flotilla.api.common import parse_duration
from flotilla.api.fleet import ModelFleet, ModelSpec
from flotilla.render import naming
from flotilla.render.settings import RenderSettings
from flotilla.runtimes import base

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def metadata(fleet: ModelFleet, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Child metadata: no ownerReferences (the reconciler adds them)."""
    return {"name": name, "namespace": fleet.namespace, "labels": dict(labels)}


def autoscaled(model: ModelSpec) -> bool:
    """True when something other than the Deployment spec owns the replica count (the built-in
    autoscaler, the HPA or KEDA)."""
    return model.autoscaled


def pod_scheduling(model: ModelSpec) -> dict[str, Any]:
    """Node selector and tolerations: the model's own plus GPU placement when it has GPUs."""
    node_selector = dict(model.node_selector)
    tolerations = [t.to_k8s() for t in model.tolerations]
    if model.gpus:
        if model.accelerator is not None and model.accelerator.product:
            node_selector.setdefault(GPU_PRODUCT_LABEL, model.accelerator.product)
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return scheduling(node_selector, tolerations)


def scheduling(node_selector: dict[str, str], tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec's `nodeSelector` (sorted) and `tolerations`, each only when non-empty."""
    node_selector = dict(sorted(node_selector.items()))
    out: dict[str, Any] = {}
    if node_selector:
        out["nodeSelector"] = node_selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def deployment(fleet: ModelFleet, model: ModelSpec, settings: RenderSettings) -> dict[str, Any]:
    """The model server Deployment. `spec.replicas` is left out when an autoscaler owns it, so server-side
    apply never fights the HPA, KEDA or the built-in autoscaler (which patches spec.replicas); the
    count it is created with is then in the `flotilla.dev/initial-replicas` annotation."""
    parts = runtimes.get(model.runtime).build(model, settings.runtimes)
    labels = naming.model_labels(fleet, model)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": base.pod_security_context(),
        "terminationGracePeriodSeconds": 30,
    }
    if parts.init_containers:
        pod_spec["initContainers"] = parts.init_containers
    pod_spec["containers"] = [parts.container]
    pod_spec["volumes"] = parts.volumes
    pod_spec |= pod_scheduling(model)
    spec: dict[str, Any] = {}
    if not autoscaled(model):
        spec["replicas"] = model.replicas.min
    spec |= {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": naming.model_selector(fleet, model)},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if model.gpus:  # roll without needing a spare GPU: replace pods one at a time
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    meta = metadata(fleet, naming.model_deployment_name(fleet, model), labels)
    if autoscaled(model):
        meta["annotations"] = {naming.INITIAL_REPLICAS: str(model.replicas.min)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def service(fleet: ModelFleet, model: ModelSpec) -> dict[str, Any]:
    """ClusterIP Service in front of the model's pods (the router discovers pods from its EndpointSlices)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            fleet, naming.model_service_name(fleet, model), naming.model_labels(fleet, model)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.model_selector(fleet, model),
            "ports": [
                {"name": "http", "port": naming.MODEL_SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def hpa(fleet: ModelFleet, model: ModelSpec, settings: RenderSettings) -> dict[str, Any]:
    """autoscaling/v2 HPA on in-flight requests per pod (custom metrics API) and optionally CPU."""
    scaling = model.autoscaling
    metrics: list[dict[str, Any]] = [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": settings.in_flight_metric},
                "target": {"type": "AverageValue", "averageValue": str(scaling.target_in_flight)},
            },
        }
    ]
    if scaling.target_cpu_utilization is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                },
            }
        )
    name = naming.model_deployment_name(fleet, model)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(fleet, naming.model_hpa_name(fleet, model), naming.model_labels(fleet, model)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": model.replicas.min,
            "maxReplicas": model.replicas.upper,
            "metrics": metrics,
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": round(parse_duration(scaling.scale_down_delay))}
            },
        },
    }


def scaled_object(fleet: ModelFleet, model: ModelSpec, settings: RenderSettings) -> dict[str, Any]:
    """KEDA ScaledObject on the router's in-flight + queued gauges for this model, read through Prometheus.

    With replicas.min 0, KEDA parks the Deployment at `idleReplicaCount: 0` while the query is 0 and runs
    1..max replicas when it is above `activationThreshold` (KEDA requires idle < minReplicaCount).
    """
    scaling = model.autoscaling
    delay = round(parse_duration(scaling.scale_down_delay))
    selector = (
        f'__name__=~"{settings.router_in_flight_metric}|{settings.router_queued_metric}",'
        f'namespace="{fleet.namespace}",pod=~"{naming.router_name(fleet)}-.+",model="{model.name}"'
    )  # this fleet's router pods only: two fleets in a namespace may both have a model of this name
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": naming.model_deployment_name(fleet, model)
        },
        "pollingInterval": max(1, round(parse_duration(scaling.window))),
        "cooldownPeriod": delay,
        "minReplicaCount": max(1, model.replicas.min),
        "maxReplicaCount": model.replicas.upper,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": round(parse_duration(scaling.scale_up_delay))},
                    "scaleDown": {"stabilizationWindowSeconds": delay},
                }
            }
        },
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": settings.keda_prometheus_url,
                    "query": f"sum({{{selector}}}) or vector(0)",
                    "threshold": str(scaling.target_in_flight),
                    "activationThreshold": "0",
                },
            }
        ],
    }  # fmt: skip
    if model.replicas.min == 0:
        spec = {"idleReplicaCount": 0, **spec}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(
            fleet, naming.model_scaled_object_name(fleet, model), naming.model_labels(fleet, model)
        ),
        "spec": spec,
    }


def pdb(fleet: ModelFleet, name: str, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    """At most one pod of the group down at a time during voluntary disruptions (drains, upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(fleet, name, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def render_model(fleet: ModelFleet, model: ModelSpec, settings: RenderSettings) -> list[dict[str, Any]]:
    """Every child of one model, in a stable order."""
    objects = [deployment(fleet, model, settings), service(fleet, model)]
    if autoscaled(model) and model.autoscaling.mode == "hpa":
        objects.append(hpa(fleet, model, settings))
    if autoscaled(model) and model.autoscaling.mode == "keda":
        objects.append(scaled_object(fleet, model, settings))
    if (model.replicas.upper if autoscaled(model) else model.replicas.min) > 1:
        labels = naming.model_labels(fleet, model)
        objects.append(
            pdb(fleet, naming.model_pdb_name(fleet, model), labels, naming.model_selector(fleet, model))
        )
    return objects
