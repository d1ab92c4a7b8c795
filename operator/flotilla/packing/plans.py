"""A fleet's packing plan: opted-in models grouped by (pack, accelerator kind), each group bin-packed into
as few pods as its budget allows; what cannot be planned is reported with a reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from flotilla.api.fleet import ModelFleetSpec
from flotilla.api.modelspec import ModelSpec
from flotilla.api.placement import NONE
from flotilla.packing import binpacking, budgets, memory

SERVED = "each pack pod runs flotilla pack-serve (CPU) or ray.serve.llm (GPU, rendered, not run here)"
"""Said wherever the plan is shown: what serves a planned pod."""


def quantity(size: int) -> str:
    """Bytes as a short Kubernetes-style quantity (1.5Gi, 640Mi)."""
    if size >= budgets.GIB:
        return f"{size / budgets.GIB:.1f}".removesuffix(".0") + "Gi"
    return f"{-(-size // memory.MIB)}Mi"


@dataclasses.dataclass(frozen=True)
class PackPod:
    """One planned pod and the models it would serve."""

    name: str
    """<pack>-<n>, n counting the pack's pods from 1."""
    pack: str
    kind: budgets.Kind
    models: tuple[str, ...]
    """Largest demand first."""
    used: int
    budget: budgets.Budget
    threads: tuple[int, ...] = ()
    """CPU pods: each model's llama.cpp threads (its CPU share), in the order of ``models``."""

    @property
    def oversize(self) -> bool:
        """One model larger than the usable budget (within the accelerator's memory): a pod of its own."""
        return self.used > self.budget.usable


@dataclasses.dataclass(frozen=True)
class Unplaced:
    """An opted-in model the plan has no pod for, and why."""

    model: str
    pack: str
    reason: str
    """TooLarge, SizeUnknown, BudgetUnknown or NotPackable."""
    message: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every opted-in model is in exactly one of ``pods`` or ``unplaced``."""

    pods: tuple[PackPod, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()
    demands: Mapping[str, memory.Demand] = dataclasses.field(default_factory=dict)

    @property
    def wanted(self) -> bool:
        """True when any model opted in to packing."""
        return bool(self.pods or self.unplaced)

    def pod_of(self, model: str) -> PackPod | None:
        return next((p for p in self.pods if model in p.models), None)

    def describe(self) -> list[str]:
        """One line per pod and per unplaced model, for people (`flotilla render`, Events)."""
        lines = []
        for pod in self.pods:
            alone = " (larger than the usable budget: a pod of its own)" if pod.oversize else ""
            lines.append(
                f"{pod.name} [{pod.kind}]: {', '.join(pod.models)}: {quantity(pod.used)} of "
                f"{quantity(pod.budget.usable)} usable ({quantity(pod.budget.capacity)} in all){alone}"
            )
        lines += [f"{u.model}: not packed: {u.reason}: {u.message}" for u in self.unplaced]
        return lines


def _parts(demand: memory.Demand) -> str:
    return (
        f"weights {quantity(demand.weights)} ({demand.weights_from}) + KV cache {quantity(demand.kv_cache)} "
        f"+ overhead {quantity(demand.overhead)}"
    )


def unpackable(model: ModelSpec) -> str | None:
    """Why a pack pod cannot serve the model whatever its size, or None: a CPU pack (llama.cpp in
    pack-serve) loads a GGUF file the pod stages, a GPU pack (ray.serve.llm) runs vLLM engines."""
    if model.gpus == 0 and model.source.scheme == "hf":
        return (
            "a CPU pack loads a GGUF file and an hf:// source names a repository: give the model an "
            "https://huggingface.co/ORG/REPO/resolve/main/FILE.gguf, pvc://, s3:// or file:// source"
        )
    if model.adapter is not None:
        return "pack-serve loads no LoRA adapters: a model with an adapter keeps its own pod"
    if model.gpus > 0 and model.runtime != "vllm":
        return "a GPU pack runs vLLM engines (ray.serve.llm): set runtime vllm or placement.pack none"
    if model.autoscaled and model.autoscaling.mode in ("hpa", "keda"):
        # A pack's replicas are set by the built-in autoscaler from all its models' load; one model's
        # HorizontalPodAutoscaler or ScaledObject would fight it over the same Deployment.
        return (
            f"autoscaling mode {model.autoscaling.mode} scales one model's own Deployment and a pack is "
            "scaled by the built-in autoscaler: use mode builtin (or none) or placement.pack none"
        )
    return None


def _refusal(
    model: ModelSpec, pack: str, kind: budgets.Kind, need: memory.Demand | None, budget: budgets.Budget | None
) -> Unplaced | None:
    """Why the model cannot be planned into any pod of its group, or None when it can."""
    why = unpackable(model)
    if why is not None:
        return Unplaced(model.name, pack, "NotPackable", why)
    model_name = model.name
    if budget is None:
        return Unplaced(model_name, pack, "BudgetUnknown",
            f"the memory of a {kind} pod is unknown: set accelerator.product to a known GPU product or "
            "give the pack spec.packs[].memory")  # fmt: skip
    if need is None:
        return Unplaced(model_name, pack, "SizeUnknown",
            "the size of its weights is unknown: set placement.memory (e.g. 1536Mi)")  # fmt: skip
    if need.total > budget.capacity:
        return Unplaced(model_name, pack, "TooLarge",
            f"needs {quantity(need.total)} ({_parts(need)}) but a {kind} pod has "
            f"{quantity(budget.capacity)}")  # fmt: skip
    return None


def plan(spec: ModelFleetSpec, artefact_bytes: Mapping[str, int] | None = None) -> Plan:
    """The fleet's plan. ``artefact_bytes``: weights sizes already known, by model name (else the hints)."""
    sizes = artefact_bytes or {}
    packs = {p.name: p for p in spec.packs}
    groups: dict[tuple[str, budgets.Kind], list[ModelSpec]] = {}
    for model in spec.models:
        pack = spec.pack_of(model)
        if pack != NONE:
            groups.setdefault((pack, budgets.Kind.of(model)), []).append(model)
    by_name = {m.name: m for m in spec.models}
    pods: list[PackPod] = []
    unplaced: list[Unplaced] = []
    demands: dict[str, memory.Demand] = {}
    counters: dict[str, int] = {}
    for pack, kind in sorted(groups):
        budget = budgets.budget(kind, packs.get(pack))
        items = []
        for model in groups[(pack, kind)]:
            need = memory.demand(model, sizes.get(model.name))
            if need is not None:
                demands[model.name] = need
            refusal = _refusal(model, pack, kind, need, budget)
            if refusal is not None:
                unplaced.append(refusal)
            elif need is not None:
                items.append(binpacking.Item(model.name, need.total))
        if budget is None:
            continue
        for packed in binpacking.first_fit_decreasing(items, budget.usable):
            counters[pack] = counters.get(pack, 0) + 1
            names = tuple(i.key for i in packed.items)
            pods.append(
                PackPod(
                    name=f"{pack}-{counters[pack]}",
                    pack=pack,
                    kind=kind,
                    models=names,
                    used=packed.used,
                    budget=budget,
                    threads=tuple(budgets.cpu_threads(by_name[n]) for n in names) if kind.gpus == 0 else (),
                )
            )
    return Plan(tuple(pods), tuple(sorted(unplaced, key=lambda u: u.model)), demands)
