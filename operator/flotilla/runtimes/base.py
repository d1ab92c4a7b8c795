"""What every serving runtime provides (the `Runtime` protocol) and the pod pieces they share: security
contexts, writable scratch volumes, probes and the settings that pick images.

A runtime turns one `ModelSpec` into `PodParts` (main container, init containers, volumes); `flotilla.render`
wraps those into a Deployment and adds what is runtime-agnostic (labels, GPU scheduling, replicas).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from flotilla import __version__
from flotilla.api.common import SecretKeySelector
from flotilla.api.modelspec import ModelSpec

LlamaCppFlavor = Literal["llama-server", "llama-cpp-python"]

RUN_AS_USER = 1000
SCRATCH_DIRS = {"tmp": "/tmp", "cache": "/cache"}
"""emptyDir volumes mounted writable so the root filesystem can stay read-only (HOME and caches -> /cache)."""
CACHE_ENV = [
    {"name": "HOME", "value": "/cache"},
    {"name": "XDG_CACHE_HOME", "value": "/cache"},
    {"name": "HF_HOME", "value": "/cache/huggingface"},
]
"""Env of every model server: home and caches on the writable scratch volume."""
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"
"""Of the one-shot containers (downloads, training steps): a failed one's last log lines become its
termination message, so `kubectl describe` and the pod's status say why (a 404 from the store, say)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """Images and server flavours, chosen where the operator is deployed (env: `flotilla.render.settings`)."""

    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    """vLLM OpenAI-compatible server (GPU)."""
    llamacpp_image: str = "ghcr.io/ggml-org/llama.cpp:server-b6550"
    """llama.cpp server for CPU models."""
    llamacpp_cuda_image: str = "ghcr.io/ggml-org/llama.cpp:server-cuda-b6550"
    """llama.cpp server for llamacpp models given a GPU."""
    llamacpp_flavor: LlamaCppFlavor = "llama-server"
    """Command line the llama.cpp image speaks: `llama-server` (ggml-org images) or `llama-cpp-python`
    (`python -m llama_cpp.server`, e.g. the flotilla-llamacpp image)."""
    http_download_image: str = "curlimages/curl:8.16.0"
    """Init container that downloads http(s):// sources."""
    s3_download_image: str = f"flotilla:{__version__}"
    """Image with the `flotilla` command, for `flotilla objects cp`: the init containers that download s3://
    sources and the training Job's publish step. Default: the flotilla image (no third-party image)."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of every container Flotilla renders."""


@dataclass
class PodParts:
    """A runtime's share of a model pod."""

    container: dict[str, Any]
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)


class Runtime(Protocol):
    """One serving engine (vLLM, llama.cpp, later ray-serve). Registered in `flotilla.runtimes.RUNTIMES`."""

    name: str
    port: int
    """Container port of the OpenAI-compatible server (named `http`)."""

    def build(self, model: ModelSpec, settings: RuntimeSettings) -> PodParts:
        """The container(s) and volumes serving `model`; raise InvalidSpecError for what cannot be served."""
        ...


def secret_env(name: str, ref: SecretKeySelector) -> dict[str, Any]:
    """The env var ``name`` read from a Secret key (Flotilla never reads the value itself)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    """Non-root, no privilege escalation, no capabilities; read-only root unless the runtime cannot."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
    }


def pod_security_context() -> dict[str, Any]:
    """Pod-wide: a fixed non-root user (so images defaulting to root still start), RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volumes() -> list[dict[str, Any]]:
    return [{"name": name, "emptyDir": {}} for name in SCRATCH_DIRS]


def scratch_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for name, path in SCRATCH_DIRS.items()]


def http_probe(path: str, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    """An HTTP GET probe on the `http` port."""
    probe: dict[str, Any] = {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def probes(path: str, startup_minutes: int) -> dict[str, Any]:
    """Readiness, liveness and a startup probe long enough for weights to download and load."""
    return {
        "startupProbe": http_probe(path, period=10, failures=startup_minutes * 6),
        "readinessProbe": http_probe(path, period=5, failures=3),
        "livenessProbe": http_probe(path, period=15, failures=4),
    }


def merge_env(base: list[dict[str, Any]], model: ModelSpec) -> list[dict[str, Any]]:
    """Flotilla's env followed by the model's own; a model variable replaces Flotilla's of the same name."""
    overrides = [e.to_k8s() for e in model.env]
    names = {e["name"] for e in overrides}
    return [e for e in base if e["name"] not in names] + overrides


def container(
    model: ModelSpec,
    settings: RuntimeSettings,
    *,
    image: str,
    port: int,
    args: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    probe_path: str,
    command: list[str] | None = None,
    default_resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model server container, assembled the same way for every runtime."""
    resources = model.resources.to_k8s() or copy.deepcopy(default_resources or {})
    if model.gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(model.gpus)
    spec: dict[str, Any] = {
        "name": "server",
        "image": model.image or image,
        "imagePullPolicy": settings.image_pull_policy,
    }
    if command:
        spec["command"] = command
    spec |= {
        "args": args + list(model.args),
        "env": merge_env([*CACHE_ENV, *env], model),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": container_security_context(),
        "volumeMounts": scratch_mounts() + mounts,
        **probes(probe_path, startup_minutes=30),
    }
    return spec
