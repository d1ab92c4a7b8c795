"""A pack pod as a KubeRay ``ray.io/v1`` RayService (``spec.packs[].engine: kuberay``): past one node.

The Ray head pod runs the ``flotilla-ray`` image; KubeRay starts Ray in it and deploys ``serveConfigV2``:
one Serve application, ``flotilla.packserve.server:app``, whose ``args`` are the same pack-serve config
``flotilla pack-serve`` reads, with one deployment per model (``model-<name>``, its CPU share as
``num_cpus``) behind the ingress that routes ``/<model>/v1/...``. KubeRay's ``<name>-serve-svc`` Service
answers on port 8000.

Pure: a pack pod of the plan and its fleet in, one dict out. CPU packs only (GPU packs with ray.serve.llm
are the next step), and weights the pod can read as files: ``file://`` (in the image) or ``pvc://``.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

import yaml

from flotilla import __version__, errors
from flotilla.api.fleet import ModelFleet, ModelSpec
from flotilla.packing.plans import PackPod, Plan
from flotilla.render import naming, packconfigs
from flotilla.runtimes import base

API_VERSION = "ray.io/v1"
KIND = "RayService"
RAY_VERSION = "2.60.0"
"""The ray[serve] pin of pyproject.toml's `ray` extra, which the flotilla-ray image installs."""
DEFAULT_IMAGE = f"flotilla-ray:{__version__}"
SERVE_PORT = 8000
IMPORT_PATH = "flotilla.packserve.server:app"
PACK = "flotilla.dev/pack"
DEFAULT_CONTEXT = 2048
MODELS_DIR = "/models"
PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": SERVE_PORT}
"""The head container's ports, named as KubeRay expects them."""


def name(fleet: ModelFleet, pod: PackPod) -> str:
    """``<fleet>-<pack pod>``, e.g. ``local-small-1``."""
    return f"{fleet.name}-{pod.name}"


def serve_service(fleet: ModelFleet, pod: PackPod) -> str:
    """The Service KubeRay creates for a RayService's Serve endpoints (port 8000), where the router looks."""
    return f"{name(fleet, pod)}-serve-svc"


def threads(model: ModelSpec) -> int:
    """A model's CPU share: its cpu request rounded up (500m -> 1), 1 without one."""
    cpu = model.resources.requests.get("cpu")
    if cpu is None:
        return 1
    text = str(cpu)
    cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return max(1, math.ceil(cores))


def _gguf(model: ModelSpec) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(GGUF path in the head pod, its volume mounts, its volumes)."""
    source = model.source
    if source.scheme == "file":
        return source.location, [], []
    if source.scheme == "pvc":
        claim, _, sub_path = source.location.partition("/")
        mount = posixpath.join(MODELS_DIR, model.name)
        volume = f"model-{model.name}"
        return (
            posixpath.join(mount, sub_path) if sub_path else mount,
            [{"name": volume, "mountPath": mount, "readOnly": True}],
            [{"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        )
    raise errors.InvalidSpecError(
        f"model {model.name!r}: a kuberay pack reads GGUF files from file:// (in the image) or pvc:// "
        f"sources, not {source.scheme}://"
    )


def serve_config(fleet: ModelFleet, pod: PackPod, max_loaded: int | None = None) -> dict[str, Any]:
    """The Serve config (serveConfigV2, as data): one application, one deployment per model."""
    models = {m.name: m for m in fleet.spec.models}
    args_models = []
    for model_name in pod.models:
        model = models[model_name]
        entry: dict[str, Any] = {
            "name": model.name,
            "gguf": _gguf(model)[0],
            "contextLength": model.max_context_length or DEFAULT_CONTEXT,
            "threads": threads(model),
        }
        chat_format = packconfigs.chat_format(model)
        if chat_format:
            entry["chatFormat"] = chat_format
        args_models.append(entry)
    args: dict[str, Any] = {"models": args_models}
    if max_loaded is not None:
        args["maxLoaded"] = max_loaded
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "0.0.0.0", "port": SERVE_PORT},
        "applications": [
            {
                "name": "pack",
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": args,
                "deployments": [
                    {"name": f"model-{m['name']}", "ray_actor_options": {"num_cpus": m["threads"]}}
                    for m in args_models
                ],
            }
        ],
    }


def _mib(size: int) -> str:
    return f"{-(-size // 2**20)}Mi"


def _head_container(
    image: str, pull_policy: str, cpus: int, pod: PackPod, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Requests what the plan says the pack uses, limited to the pack pod's whole budget."""
    return {
        "name": "ray-head",
        "image": image,
        "imagePullPolicy": pull_policy,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
        ],
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in PORTS.items()],
        "resources": {
            "requests": {"cpu": str(cpus), "memory": _mib(pod.used)},
            "limits": {"memory": _mib(pod.budget.capacity)},
        },
        "securityContext": base.container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *mounts,
        ],
    }


def render_rayservice(
    fleet: ModelFleet,
    pod: PackPod,
    *,
    image: str = DEFAULT_IMAGE,
    pull_policy: str = "IfNotPresent",
) -> dict[str, Any]:
    """The RayService of one pack pod. Raises InvalidSpecError for a GPU pack or a source it cannot read."""
    if pod.kind.gpus:
        raise errors.InvalidSpecError(
            f"pack {pod.pack!r}: kuberay renders CPU packs only (GPU packs with ray.serve.llm are not built)"
        )
    pack = next((p for p in fleet.spec.packs if p.name == pod.pack), None)
    models = {m.name: m for m in fleet.spec.models}
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    for model_name in pod.models:
        _, more_mounts, more_volumes = _gguf(models[model_name])
        mounts += more_mounts
        volumes += more_volumes
    config = serve_config(fleet, pod, pack.max_loaded if pack else None)
    cpus = sum(m["threads"] for m in config["applications"][0]["args"]["models"])
    labels = {**naming.fleet_labels(fleet, "pack"), PACK: pod.pack}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": base.pod_security_context(),
        "containers": [_head_container(image, pull_policy, cpus, pod, mounts)],
        "volumes": volumes,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name(fleet, pod),
            "namespace": fleet.namespace,
            "labels": labels,
            "annotations": {naming.PACK_MODELS: ",".join(pod.models)},
        },
        "spec": {
            "serveConfigV2": yaml.safe_dump(config, sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": {
                    # num-cpus: the pack's CPU shares, which the model deployments' num_cpus add up to
                    "rayStartParams": {"num-cpus": str(cpus), "dashboard-host": "0.0.0.0"},
                    "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                },
            },
        },
    }


def kuberay_pods(fleet: ModelFleet, plan: Plan) -> list[PackPod]:
    """The plan's pods whose pack says ``engine: kuberay`` (the ``auto`` pack is always ``pod``)."""
    kuberay = {p.name for p in fleet.spec.packs if p.engine == "kuberay"}
    return [pod for pod in plan.pods if pod.pack in kuberay]


def render_rayservices(
    fleet: ModelFleet, plan: Plan, *, image: str = DEFAULT_IMAGE, pull_policy: str = "IfNotPresent"
) -> list[dict[str, Any]]:
    """One RayService per pack pod of a kuberay pack, in plan order."""
    return [
        render_rayservice(fleet, pod, image=image, pull_policy=pull_policy)
        for pod in kuberay_pods(fleet, plan)
    ]
