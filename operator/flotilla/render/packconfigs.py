"""What a pack pod's server reads, from the packing plan: the pack-serve config of a CPU pack and the
`ray.serve.llm` Serve config of a GPU pack. Pure; `render.packs` puts either in the pack's ConfigMap.

GPU shares: a model's fraction of each GPU is its planned demand over the pod's capacity, floored to a
thousandth, and is both its Ray `num_gpus` per bundle and vLLM's `gpu_memory_utilization` (the share of a
GPU's memory vLLM may take), so the engines' memory is the plan's budget and the fractions of a pod add up
to at most 1 per GPU (the plan keeps them under the usable budget).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.api.modelspec import ModelSpec
from flotilla.packing import memory, plans
from flotilla.packserve.config import PackModel, PackServeConfig
from flotilla.render import naming

SERVE_LLM_APP = "ray.serve.llm:build_openai_app"
CPU_CONFIG_KEY = "pack.yaml"
GPU_CONFIG_KEY = "serve.yaml"


@dataclasses.dataclass(frozen=True)
class Weights:
    """Where one model's weights are inside the pack pod (``runtimes.sources`` staged them)."""

    path: str | None = None
    """A GGUF file (CPU) or a weights directory (GPU)."""
    hf_repo: str | None = None
    """ORG/REPO when vLLM pulls from Hugging Face itself (GPU only)."""
    hf_revision: str | None = None


def context(model: ModelSpec) -> int:
    """The context the plan budgeted the KV cache for (``packing.memory``)."""
    return model.max_context_length or memory.DEFAULT_CONTEXT


def chat_format(model: ModelSpec) -> str | None:
    """The model's CHAT_FORMAT env value (what llama-cpp-python's own server reads), if it sets one: a pack
    serves the model with the format its pod of its own would use (Gemma 3 270M's GGUF template is not
    picked up, and without a format it answers nothing)."""
    return next((e.value for e in model.env if e.name == "CHAT_FORMAT" and e.value), None)


def cpu_config(
    pod: plans.PackPod,
    models: Sequence[ModelSpec],
    weights: Mapping[str, Weights],
    max_loaded: int | None,
) -> dict[str, Any]:
    """``flotilla pack-serve``'s config: one llama.cpp deployment per model, threads from the plan.

    Validated by pack-serve's own model, so a config the server would refuse never renders."""
    config = PackServeConfig(
        models=[
            PackModel(
                name=model.name,
                gguf=weights[model.name].path or "",
                context_length=context(model),
                threads=threads,
                chat_format=chat_format(model),
            )
            for model, threads in zip(models, pod.threads, strict=True)
        ],
        max_loaded=max_loaded,
        port=naming.PACK_PORT,
    )
    return config.model_dump(mode="json", by_alias=True, exclude_none=True)


def gpu_fraction(pod: plans.PackPod, demand: memory.Demand) -> float:
    """The model's share of each of the pod's GPUs: its demand over the capacity, floored to 0.001."""
    return math.floor(demand.total * 1000 / pod.budget.capacity) / 1000


def gpu_config(
    pod: plans.PackPod,
    models: Sequence[ModelSpec],
    weights: Mapping[str, Weights],
    demands: Mapping[str, memory.Demand],
) -> dict[str, Any]:
    """A Serve config (``serve run``): one application per model at ``/<model>``, each
    ``build_openai_app`` with one LLMConfig (vLLM), so a packed model answers ``/<model>/v1/...``."""
    applications = []
    for model in models:
        fraction = gpu_fraction(pod, demands[model.name])
        where = weights[model.name]
        loading: dict[str, Any] = {"model_id": model.model_name, "model_source": where.hf_repo or where.path}
        engine: dict[str, Any] = {"gpu_memory_utilization": fraction, "max_model_len": context(model)}
        if where.hf_revision:
            engine["revision"] = where.hf_revision
        if model.quantization:
            engine["quantization"] = model.quantization
        if pod.kind.gpus > 1:
            engine["tensor_parallel_size"] = pod.kind.gpus
        llm_config = {
            "model_loading_config": loading,
            "engine_kwargs": engine,
            "deployment_config": {
                "num_replicas": 1,
                "max_ongoing_requests": min(model.max_in_flight, model.autoscaling.target_in_flight),
            },
            "placement_group_config": {"bundles": [{"GPU": fraction} for _ in range(pod.kind.gpus)]},
        }
        applications.append(
            {
                "name": model.name,
                "route_prefix": f"/{model.name}",
                "import_path": SERVE_LLM_APP,
                "args": {"llm_configs": [llm_config]},
            }
        )
    return {"http_options": {"host": "0.0.0.0", "port": naming.PACK_PORT}, "applications": applications}
