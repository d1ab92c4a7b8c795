"""Placement: which models may share a pod, by memory budget (`spec.models[].placement`, `spec.placement`,
`spec.packs`). The operator plans the packing (`flotilla.packing`); see docs/packing.md.

A model opts in with `placement.pack: auto` (packed with the other `auto` models of its accelerator kind)
or the name of an entry of `spec.packs` (a pack with its own budget and options); `none` (the default)
keeps one pod per model.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from flotilla.api import messages
from flotilla.api.common import MAX_NAME, NAME_PATTERN, Name, SpecModel, cel_rules

AUTO = "auto"
NONE = "none"
RESERVED_PACK_NAMES = (AUTO, NONE)

MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
"""A memory quantity as Kubernetes writes it (binary or decimal suffix, or plain bytes)."""
_CEL_MEMORY = MEMORY_PATTERN.replace("\\", "\\\\")  # a backslash inside a CEL string is escaped
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}

PackEngine = Literal["pod", "kuberay"]
"""How a pack's pods run: ``pod`` (a Deployment running ``flotilla pack-serve``, Ray started inside the pod)
or ``kuberay`` (a ray.io/v1 RayService for KubeRay's operator, which must be installed)."""

PackRef = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
"""`auto`, `none` or the name of an entry of spec.packs."""
Memory = Annotated[str, Field(min_length=1, max_length=32)]


def memory_bytes(quantity: str) -> int:
    """Bytes in a memory quantity such as ``1536Mi``, ``2Gi`` or ``3G`` (ValueError when it is none)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", quantity)
    if match is None or match.group(2) not in _MEMORY_UNITS:
        raise ValueError(f"{messages.MEMORY_QUANTITY} (got {quantity!r})")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


class Placement(SpecModel):
    """Where a model runs: a pod of its own (pack none) or packed with other small models by memory."""

    model_config = cel_rules(
        (f"!has(self.memory) || self.memory.matches('{_CEL_MEMORY}')", messages.MEMORY_QUANTITY),
    )

    pack: PackRef | None = None
    """auto (pack with the fleet's other auto models of the same accelerator kind), none (a pod of its own)
    or the name of an entry of spec.packs; unset: spec.placement.pack."""
    memory: Memory | None = None
    """Memory the weights take (e.g. 1536Mi, 4Gi), used for packing when the artefact's size is not known.
    A packed model needs it until the operator can read artefact sizes."""

    @model_validator(mode="after")
    def _quantity(self) -> Placement:
        if self.memory is not None:
            memory_bytes(self.memory)
        return self


class FleetPlacement(SpecModel):
    """The fleet's default placement for models that set no placement.pack of their own."""

    pack: PackRef = NONE
    """auto, none (default: one pod per model) or the name of an entry of spec.packs."""


class PackSpec(SpecModel):
    """A named pack: models naming it share pods of one accelerator kind within this budget."""

    model_config = cel_rules(
        (f"self.name != '{AUTO}' && self.name != '{NONE}'", messages.RESERVED_PACK_NAME),
        (f"!has(self.memory) || self.memory.matches('{_CEL_MEMORY}')", messages.MEMORY_QUANTITY),
    )

    name: Name
    """Pack name (DNS label): what models' placement.pack names."""
    memory: Memory | None = None
    """Memory of one pack pod: per GPU for GPU models (default: the GPU product's memory), RAM for CPU
    models (default 16Gi)."""
    safety_margin_percent: Annotated[int, Field(ge=0, le=50)] = 10
    """Share of the memory kept free (fragmentation, allocator slack, estimate error)."""
    max_loaded: Annotated[int, Field(ge=1, le=32)] | None = None
    """Most models loaded at once in one CPU pack pod, least recently used unloaded first (a request for
    an unloaded model is held while it loads). GPU packs keep every model loaded."""
    engine: PackEngine = "pod"
    """pod (default: each pack pod is a Deployment running `flotilla pack-serve`, Ray started inside it)
    or kuberay (each pack pod is a ray.io/v1 RayService, for packs past one node; needs KubeRay's operator
    and its RayService CRD installed; docs/packing.md). Rendered and checked against the CRD; the operator
    does not apply RayServices yet."""

    @model_validator(mode="after")
    def _valid(self) -> PackSpec:
        if self.name in RESERVED_PACK_NAMES:
            raise ValueError(f"{messages.RESERVED_PACK_NAME} (got {self.name!r})")
        if self.memory is not None:
            memory_bytes(self.memory)
        return self


__all__ = [
    "AUTO",
    "MEMORY_PATTERN",
    "NONE",
    "RESERVED_PACK_NAMES",
    "FleetPlacement",
    "PackEngine",
    "PackSpec",
    "Placement",
    "memory_bytes",
]
