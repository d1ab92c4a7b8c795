"""What one model needs in a pack pod, in bytes: weights + KV cache + runtime overhead.

    weights   = the artefact's size when known, else placement.memory (the hint)
    params    = weights / bytes-per-parameter of the quantization (awq/gptq 0.5, fp8 1, GGUF Qn ~(n+0.5)/8,
                F16/BF16 and vLLM's unquantized default 2, F32 4)
    kv/token  = max(16 KiB, 32 KiB per billion params)   (fp16 K and V of every layer; see docs/packing.md)
    tokens    = context x planned concurrency on vLLM (a sequence may fill the context on each of
                min(maxInFlight, autoscaling.targetInFlight) slots); context alone on llama.cpp, whose
                --ctx-size is one cache shared by its slots
    context   = maxContextLength, else 4096
    overhead  = per runtime: vLLM 1 GiB (CUDA context, activations, graphs), llama.cpp 256 MiB

The KV estimate is deliberately coarse: architectures differ by up to 4x (grouped-query vs full attention),
which is what the pack's safety margin and an explicit maxContextLength are for.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from flotilla.api.modelspec import ModelSpec
from flotilla.api.placement import memory_bytes

KIB, MIB, GIB = 2**10, 2**20, 2**30
DEFAULT_CONTEXT = 4096
"""Tokens assumed without maxContextLength (llama.cpp's default --ctx-size)."""
KV_BYTES_PER_BILLION = 32 * KIB
"""KV cache bytes per token per billion parameters (fp16; e.g. Llama 3.2 3B: 112 KiB measured, 102
estimated; Qwen2.5 1.5B: 28 KiB measured, 48 estimated)."""
KV_BYTES_FLOOR = 16 * KIB
"""Least KV bytes per token assumed, however small the model (Gemma 3 270M: 18 KiB)."""
OVERHEAD: Mapping[str, int] = {"vllm": 1 * GIB, "llamacpp": 256 * MIB}
"""Runtime memory beyond weights and KV cache, per model."""
DEFAULT_OVERHEAD = 512 * MIB
_BYTES_PER_PARAM: Mapping[str, float] = {
    "awq": 0.5,
    "gptq": 0.5,
    "fp8": 1.0,
    "F16": 2.0,
    "BF16": 2.0,
    "F32": 4.0,
}
_GGUF_BITS = re.compile(r"^I?Q([1-8])_")


def bytes_per_param(runtime: str, quantization: str | None) -> float:
    """Bytes one parameter takes in the weights file, from the quantization (coarse)."""
    if quantization is None:
        return 2.0 if runtime == "vllm" else 0.5625  # vLLM loads fp16/bf16; a GGUF is most often Q4
    if quantization in _BYTES_PER_PARAM:
        return _BYTES_PER_PARAM[quantization]
    bits = _GGUF_BITS.match(quantization)
    return (int(bits.group(1)) + 0.5) / 8 if bits else 2.0


@dataclasses.dataclass(frozen=True)
class Demand:
    """One model's memory in a pack pod, by part, in bytes."""

    model: str
    weights: int
    weights_from: str
    """artefact (its size is known) or hint (placement.memory)."""
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def planned_tokens(model: ModelSpec) -> int:
    """KV cache tokens to budget for: the context, times the planned concurrency where each slot has one."""
    context = model.max_context_length or DEFAULT_CONTEXT
    if model.runtime != "vllm":
        return context
    return context * min(model.max_in_flight, model.autoscaling.target_in_flight)


def kv_bytes_per_token(weights: int, runtime: str, quantization: str | None) -> int:
    """KV cache bytes per token, scaled by the parameter count the weights imply."""
    billions = weights / bytes_per_param(runtime, quantization) / 1e9
    return max(KV_BYTES_FLOOR, round(KV_BYTES_PER_BILLION * billions))


def demand(model: ModelSpec, artefact_bytes: int | None = None) -> Demand | None:
    """The model's demand; None when the weights' size is unknown (no artefact size, no memory hint)."""
    if artefact_bytes is not None:
        weights, origin = artefact_bytes, "artefact"
    elif model.placement.memory is not None:
        weights, origin = memory_bytes(model.placement.memory), "hint"
    else:
        return None
    per_token = kv_bytes_per_token(weights, model.runtime, model.quantization)
    return Demand(
        model=model.name,
        weights=weights,
        weights_from=origin,
        kv_cache=per_token * planned_tokens(model),
        overhead=OVERHEAD.get(model.runtime, DEFAULT_OVERHEAD),
    )
