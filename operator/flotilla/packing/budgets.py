"""How much memory one pack pod has: per accelerator kind (a GPU product, or CPU), less a safety margin."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from flotilla.api.modelspec import ModelSpec
from flotilla.api.placement import PackSpec, memory_bytes

GIB = 2**30
CPU_POD_MEMORY = 16 * GIB
"""A CPU pack pod's memory unless its pack says otherwise (spec.packs[].memory)."""
DEFAULT_SAFETY_MARGIN_PERCENT = 10
"""The `auto` pack's margin (named packs set their own, same default)."""
GPU_MEMORY: Mapping[str, int] = {
    "Tesla-T4": 16 * GIB,
    "NVIDIA-A10": 24 * GIB,
    "NVIDIA-A10G": 24 * GIB,
    "NVIDIA-L4": 24 * GIB,
    "NVIDIA-L40": 48 * GIB,
    "NVIDIA-L40S": 48 * GIB,
    "NVIDIA-H100-PCIe": 80 * GIB,
    "NVIDIA-H100-NVL": 94 * GIB,
    "NVIDIA-H200": 141 * GIB,
    "NVIDIA-GeForce-RTX-4090": 24 * GIB,
}
"""Memory per GPU by nvidia.com/gpu.product label value, for products whose name does not say it."""
_GB_IN_NAME = re.compile(r"-(\d+)GB\b")


@dataclasses.dataclass(frozen=True, order=True)
class Kind:
    """An accelerator kind: models share a pod only with models of the same kind."""

    gpus: int
    """GPUs per pod (0: CPU)."""
    product: str = ""
    """nvidia.com/gpu.product ("" with no GPU, or a GPU of any product)."""

    @classmethod
    def of(cls, model: ModelSpec) -> Kind:
        if model.gpus == 0:
            return cls(0)
        return cls(model.gpus, (model.accelerator.product if model.accelerator else None) or "")

    def __str__(self) -> str:
        if self.gpus == 0:
            return "cpu"
        return f"{self.gpus}x {self.product or 'GPU (any product)'}"


def gpu_memory(product: str) -> int | None:
    """Memory of one GPU of that product (None: unknown; say it with spec.packs[].memory)."""
    if product in GPU_MEMORY:
        return GPU_MEMORY[product]
    found = _GB_IN_NAME.search(product)
    return int(found.group(1)) * GIB if found else None


def cpu_millicores(model: ModelSpec) -> int:
    """The model's resources.requests.cpu in millicores (1000, one core, without a request)."""
    cpu = str(model.resources.requests.get("cpu", "1"))
    return math.ceil(round(float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000, 3))


def cpu_threads(model: ModelSpec) -> int:
    """A CPU-packed model's share of the pack pod: llama.cpp threads (and Ray num_cpus), its
    resources.requests.cpu rounded up, at least 1 (one thread without a request)."""
    return max(1, math.ceil(cpu_millicores(model) / 1000))


@dataclasses.dataclass(frozen=True)
class Budget:
    """One pack pod's memory: ``capacity`` in all, ``usable`` after the safety margin."""

    capacity: int
    usable: int


def budget(kind: Kind, pack: PackSpec | None) -> Budget | None:
    """The pod budget of a kind in a pack (None for the auto pack: defaults); None when unknown."""
    margin = pack.safety_margin_percent if pack else DEFAULT_SAFETY_MARGIN_PERCENT
    if pack is not None and pack.memory is not None:
        per_unit: int | None = memory_bytes(pack.memory)
    elif kind.gpus == 0:
        per_unit = CPU_POD_MEMORY
    else:
        per_unit = gpu_memory(kind.product)
    if per_unit is None:
        return None
    capacity = per_unit * max(kind.gpus, 1)
    return Budget(capacity=capacity, usable=capacity * (100 - margin) // 100)
