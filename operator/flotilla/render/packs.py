"""A packing plan's pods: per planned pod a ConfigMap (the server's config), a Deployment and a Service.

A CPU pack runs ``flotilla pack-serve`` (Ray Serve + llama-cpp-python) in the `flotilla-ray` image; a GPU
pack runs ``serve run`` of a `ray.serve.llm` config in the `flotilla-ray-vllm` image (rendered, not run
here: there is no GPU to run it on). Either answers ``/<model>/v1/...`` on port 8000, which is where the
router sends a packed model (``render.routing``). Each model's weights reach the pod as they reach a model
pod of its own (``runtimes.sources``), in a volume and directory of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import yaml

from flotilla.api.fleet import ModelFleet, ModelSpec
from flotilla.packing import budgets, plans
from flotilla.render import models as model_render
from flotilla.render import naming, packconfigs
from flotilla.render.settings import RenderSettings
from flotilla.runtimes import base, sources

CONFIG_VOLUME = "pack-config"
CONFIG_SHA = "flotilla.dev/config-sha256"
"""Pod template annotation: the server reads its config once, so a changed config rolls the pods."""
SHM_SIZE = "2Gi"
"""/dev/shm for Ray's object store (and vLLM's workers)."""
GPU_POD_RESOURCES = {"cpu": "2", "memory": "8Gi"}


def _mebibytes(size: int) -> str:
    """Bytes as a whole number of Mi, rounded up (a Kubernetes memory quantity must be whole bytes)."""
    return f"{-(-size // 2**20)}Mi"


def members(fleet: ModelFleet, pod: plans.PackPod) -> list[ModelSpec]:
    """The pod's models, in the plan's order (largest demand first)."""
    by_name = {m.name: m for m in fleet.spec.models}
    return [by_name[name] for name in pod.models]


def autoscaled(models: Sequence[ModelSpec]) -> bool:
    """The built-in autoscaler owns the pack's replicas when any of its models is autoscaled `builtin`
    (it scales the pack by the busiest model: ``autoscaler.scaling``)."""
    return any(m.autoscaled and m.autoscaling.mode == "builtin" for m in models)


def min_replicas(models: Sequence[ModelSpec]) -> int:
    """Replicas the pack keeps: the largest of its models' replicas.min (each pod serves every model)."""
    return max(m.replicas.min for m in models)


def max_replicas(models: Sequence[ModelSpec]) -> int:
    return max(m.replicas.upper for m in models)


def _staged(pod: plans.PackPod, models: Sequence[ModelSpec], settings: RenderSettings) -> tuple[
    dict[str, packconfigs.Weights], list[sources.StagedSource]
]:  # fmt: skip
    """Each model's weights staged in a volume `model-<i>` mounted at /models/<model>."""
    weights: dict[str, packconfigs.Weights] = {}
    staged_all: list[sources.StagedSource] = []
    for index, model in enumerate(models):
        staged = sources.stage(
            model,
            settings.runtimes,
            single_file=pod.kind.gpus == 0,
            volume=f"model-{index}",
            directory=f"{sources.MODELS_DIR}/{model.name}",
        )
        for init in staged.init_containers:
            init["name"] = f"download-{model.name}"
        weights[model.name] = packconfigs.Weights(staged.path, staged.hf_repo, staged.hf_revision)
        staged_all.append(staged)
    return weights, staged_all


def _env(staged: Sequence[sources.StagedSource], gpu: bool) -> list[dict[str, Any]]:
    """Caches on scratch, no usage stats, then the sources' env (the first of a name wins)."""
    env = [*base.CACHE_ENV, {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    if gpu:
        env.append({"name": "VLLM_NO_USAGE_STATS", "value": "1"})
    for item in (e for s in staged for e in s.env):
        if all(item["name"] != e["name"] for e in env):
            env.append(item)
    return env


def _scheduling(models: Sequence[ModelSpec]) -> dict[str, Any]:
    """Every member's node selector and tolerations (GPU placement included), without repeats."""
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    for model in models:
        parts = model_render.pod_scheduling(model)
        node_selector |= parts.get("nodeSelector", {})
        tolerations += [t for t in parts.get("tolerations", []) if t not in tolerations]
    return model_render.scheduling(node_selector, tolerations)


def config_map(fleet: ModelFleet, pod: plans.PackPod, key: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": model_render.metadata(
            fleet, naming.pack_name(fleet, pod.name), naming.pack_labels(fleet, pod.name)
        ),
        "data": {key: yaml.safe_dump(config, sort_keys=False)},
    }


def deployment(
    fleet: ModelFleet,
    pod: plans.PackPod,
    models: Sequence[ModelSpec],
    staged: Sequence[sources.StagedSource],
    config: dict[str, Any],
    settings: RenderSettings,
) -> dict[str, Any]:
    """The pack's Deployment: one container serving every model of the pod."""
    gpu = pod.kind.gpus > 0
    name = naming.pack_name(fleet, pod.name)
    key = packconfigs.GPU_CONFIG_KEY if gpu else packconfigs.CPU_CONFIG_KEY
    config_path = f"{naming.PACK_CONFIG_DIR}/{key}"
    if gpu:
        command = ["serve", "run", config_path]
        resources = {
            "requests": dict(GPU_POD_RESOURCES),
            "limits": {model_render.GPU_RESOURCE: str(pod.kind.gpus)},
        }
    else:
        command = ["flotilla", "pack-serve", "--config", config_path]
        # What the models asked for, not their threads (each at least 1): three 250m models fit a
        # 2-core node; llama.cpp's threads may use more when the node has it idle.
        cpu = f"{sum(budgets.cpu_millicores(m) for m in models)}m"
        resources = {
            "requests": {"cpu": cpu, "memory": _mebibytes(pod.used)},
            "limits": {"memory": _mebibytes(pod.budget.capacity)},
        }
    container = {
        "name": "server",
        "image": settings.ray_vllm_image if gpu else settings.ray_image,
        "imagePullPolicy": settings.runtimes.image_pull_policy,
        "command": command,
        "env": _env(staged, gpu),
        "ports": [{"name": "http", "containerPort": naming.PACK_PORT, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": base.container_security_context(),
        "volumeMounts": [
            *base.scratch_mounts(),
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": CONFIG_VOLUME, "mountPath": naming.PACK_CONFIG_DIR, "readOnly": True},
            *(m for s in staged for m in s.mounts),
        ],
        **base.probes("/-/healthz" if gpu else "/healthz", startup_minutes=30),
    }  # fmt: skip
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": base.pod_security_context(),
        "terminationGracePeriodSeconds": 30,
    }
    init_containers = [c for s in staged for c in s.init_containers]
    if init_containers:
        pod_spec["initContainers"] = init_containers
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = [
        *base.scratch_volumes(),
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
        {"name": CONFIG_VOLUME, "configMap": {"name": name}},
        *(v for s in staged for v in s.volumes),
    ]
    pod_spec |= _scheduling(models)
    labels = naming.pack_labels(fleet, pod.name)
    digest = hashlib.sha256(yaml.safe_dump(config, sort_keys=True).encode()).hexdigest()
    spec: dict[str, Any] = {}
    if not autoscaled(models):
        spec["replicas"] = min_replicas(models)
    spec |= {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": naming.pack_selector(fleet, pod.name)},
        "template": {"metadata": {"labels": labels, "annotations": {CONFIG_SHA: digest}}, "spec": pod_spec},
    }
    if gpu:  # roll without needing a spare GPU
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    meta = model_render.metadata(fleet, name, labels)
    meta["annotations"] = {naming.PACK_MODELS: ",".join(pod.models)}
    if autoscaled(models):
        meta["annotations"][naming.INITIAL_REPLICAS] = str(min_replicas(models))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def service(fleet: ModelFleet, pod: plans.PackPod) -> dict[str, Any]:
    """ClusterIP Service of the pack (the router discovers its pods from the EndpointSlices)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": model_render.metadata(
            fleet, naming.pack_name(fleet, pod.name), naming.pack_labels(fleet, pod.name)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.pack_selector(fleet, pod.name),
            "ports": [
                {"name": "http", "port": naming.MODEL_SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def render_pack(
    fleet: ModelFleet, plan: plans.Plan, pod: plans.PackPod, settings: RenderSettings
) -> list[dict[str, Any]]:
    """ConfigMap, Deployment, Service (and a PodDisruptionBudget with more than one replica) of one pod."""
    models = members(fleet, pod)
    weights, staged = _staged(pod, models, settings)
    if pod.kind.gpus:
        key, config = packconfigs.GPU_CONFIG_KEY, packconfigs.gpu_config(pod, models, weights, plan.demands)
    else:
        pack = next((p for p in fleet.spec.packs if p.name == pod.pack), None)
        max_loaded = pack.max_loaded if pack else None
        key, config = packconfigs.CPU_CONFIG_KEY, packconfigs.cpu_config(pod, models, weights, max_loaded)
    objects = [
        config_map(fleet, pod, key, config),
        deployment(fleet, pod, models, staged, config, settings),
        service(fleet, pod),
    ]
    if (max_replicas(models) if autoscaled(models) else min_replicas(models)) > 1:
        name = naming.pack_name(fleet, pod.name)
        labels = naming.pack_labels(fleet, pod.name)
        objects.append(model_render.pdb(fleet, name, labels, naming.pack_selector(fleet, pod.name)))
    return objects


def render_packs(fleet: ModelFleet, plan: plans.Plan, settings: RenderSettings) -> list[dict[str, Any]]:
    """Every planned pod's children, in plan order, but those of `engine: kuberay` packs (each a
    RayService: ``render.rayservice``)."""
    kuberay = {p.name for p in fleet.spec.packs if p.engine == "kuberay"}
    pods = [pod for pod in plan.pods if pod.pack not in kuberay]
    return [obj for pod in pods for obj in render_pack(fleet, plan, pod, settings)]
