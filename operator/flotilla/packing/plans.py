"""A fleet's packing plan: opted-in models grouped by (pack, accelerator kind), each group bin-packed into
as few pods as its budget allows; what cannot be planned is reported with a reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from flotilla.api.fleet import ModelFleetSpec
from flotilla.api.modelspec import ModelSpec
from flotilla.api.placement import NONE
from flotilla.packing import binpacking, budgets, memory

NOT_BUILT = (
    "planned only: each model still runs in a pod of its own until the ray runtime serves a pack from one pod"
)
"""Said wherever the plan is shown, so nothing claims more than is built."""


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
    """TooLarge, SizeUnknown or BudgetUnknown."""
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


def _refusal(
    model: str, pack: str, kind: budgets.Kind, need: memory.Demand | None, budget: budgets.Budget | None
) -> Unplaced | None:
    """Why the model cannot be planned into any pod of its group, or None when it can."""
    if budget is None:
        return Unplaced(model, pack, "BudgetUnknown",
            f"the memory of a {kind} pod is unknown: set accelerator.product to a known GPU product or "
            "give the pack spec.packs[].memory")  # fmt: skip
    if need is None:
        return Unplaced(model, pack, "SizeUnknown",
            "the size of its weights is unknown: set placement.memory (e.g. 1536Mi)")  # fmt: skip
    if need.total > budget.capacity:
        return Unplaced(model, pack, "TooLarge",
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
            refusal = _refusal(model.name, pack, kind, need, budget)
            if refusal is not None:
                unplaced.append(refusal)
            elif need is not None:
                items.append(binpacking.Item(model.name, need.total))
        if budget is None:
            continue
        for packed in binpacking.first_fit_decreasing(items, budget.usable):
            counters[pack] = counters.get(pack, 0) + 1
            pods.append(
                PackPod(
                    name=f"{pack}-{counters[pack]}",
                    pack=pack,
                    kind=kind,
                    models=tuple(i.key for i in packed.items),
                    used=packed.used,
                    budget=budget,
                )
            )
    return Plan(tuple(pods), tuple(sorted(unplaced, key=lambda u: u.model)), demands)
