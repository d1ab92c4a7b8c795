"""`status` of a ModelFleet: what the operator observed, written by the reconciler through the status
subresource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flotilla.api.common import MAX_SHORT, MAX_TEXT

ConditionType = Literal[
    "Ready", "ModelsReady", "RouterReady", "Degraded", "ClassifierReady", "AccessReady", "Packed", "Trained"
]
CONDITION_TYPES: tuple[ConditionType, ...] = (
    "Ready",
    "ModelsReady",
    "RouterReady",
    "Degraded",
    "ClassifierReady",
    "AccessReady",
    "Packed",
    "Trained",
)
ModelPhase = Literal["Pending", "Progressing", "Ready", "Degraded", "ScaledToZero"]


class StatusModel(BaseModel):
    """Base for status models: camelCase on the wire; unknown keys ignored (old operators read new status)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The camelCase dict for a status patch (unset optional fields left out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class Condition(StatusModel):
    """A condition in the Kubernetes style."""

    type: Annotated[str, Field(max_length=64)]
    """Ready, ModelsReady, RouterReady, Degraded, ClassifierReady (only with routing.classifier.model),
    AccessReady (only with spec.access: every key's Secret was read) or Packed (only when a model opts in
    to packing: every such model has a pack pod in the plan) or Trained (only when a task has
    distillation.train: the latest training Job of every such task succeeded)."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: Annotated[str, Field(max_length=128)] = ""
    """CamelCase reason for the last transition, e.g. AllModelsReady, DeploymentUnavailable."""
    message: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    """What a person should know about it."""
    last_transition_time: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None
    ) = None
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """metadata.generation the condition was computed from."""


class ModelStatus(StatusModel):
    """Observed state of one model's Deployment."""

    name: Annotated[str, Field(max_length=MAX_SHORT)]
    """Model name."""
    ready_replicas: int = 0
    """Replicas passing their readiness probe."""
    desired_replicas: int = 0
    """Replicas the Deployment wants."""
    phase: ModelPhase = "Pending"
    """Pending, Progressing, Ready, Degraded or ScaledToZero."""
    message: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    """Why the model is not Ready, if it is not (including why the scheduler cannot place its pods)."""
    pack: Annotated[str, Field(max_length=64)] | None = None
    """The planned pack pod (status.packs[].name) when the model opts in to packing and fits one."""


class PackStatus(StatusModel):
    """One pod of the packing plan: the models it serves and its memory budget (its Deployment is
    <fleet>-pack-<name>)."""

    name: Annotated[str, Field(max_length=64)]
    """<pack>-<n>, e.g. auto-1."""
    pack: Annotated[str, Field(max_length=64)]
    """auto or the spec.packs entry."""
    accelerator: Annotated[str, Field(max_length=MAX_SHORT)]
    """The models' accelerator kind: cpu, or GPUs per pod and product (e.g. 1x NVIDIA-L4)."""
    models: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Models sharing the pod, largest first."""
    memory_used: Annotated[str, Field(max_length=32)] = ""
    """Their weights, KV cache and overhead together (e.g. 2.1Gi)."""
    memory_budget: Annotated[str, Field(max_length=32)] = ""
    """The pod's memory less the safety margin (a lone model larger than this gets a pod of its own)."""
    memory_capacity: Annotated[str, Field(max_length=32)] = ""
    """The pod's memory: the GPU's (times GPUs) or the CPU pack's."""


class ModelAutoscaling(StatusModel):
    """The built-in autoscaler's last decision for one model (written by the autoscaler, field manager
    flotilla-autoscaler, separately from the reconciler's fields)."""

    name: Annotated[str, Field(max_length=MAX_SHORT)]
    """Model name."""
    load: Annotated[float, Field(ge=0)] = 0.0
    """In-flight plus queued requests, summed over the router pods and averaged over autoscaling.window."""
    queued: Annotated[float, Field(ge=0)] = 0.0
    """Requests the routers hold for this model right now (waiting for a cold start)."""
    current_replicas: int = 0
    """Replicas the Deployment had when the decision was made."""
    desired_replicas: int = 0
    """Replicas the autoscaler wants."""
    reason: Annotated[str, Field(max_length=64)] = ""
    """ScaleUp, ScaleDown, ColdStart, Steady, BelowMin, AboveMax or NoData."""
    routers: int = 0
    """Router pods whose metrics were read for this decision."""
    last_scale_time: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None
    ) = None
    """When the autoscaler last changed the replicas (RFC 3339)."""


class ClassifierStatus(StatusModel):
    """The custom classifier the fleet's router config names: the last one the operator accepted."""

    url: Annotated[str, Field(max_length=2048)]
    """Where it is fetched from."""
    sha256: Annotated[str, Field(max_length=64)]
    """sha256 of the file."""
    version: Annotated[str, Field(max_length=64)] = ""
    """The classifier's version (a hash of its training data)."""
    tasks: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=256)] = Field(
        default_factory=list
    )
    """Task classes it was trained on (general stands for the fleet's default task)."""


class KeySpend(StatusModel):
    """One API key's cloud spend this month, summed over the router replicas."""

    name: Annotated[str, Field(max_length=64)]
    """Key policy name (spec.access.keys[].name)."""
    spent_usd: Annotated[float, Field(ge=0)] = Field(0.0, alias="spentUSD")
    """US dollars spent on cloud fallbacks this month."""
    budget_usd: Annotated[float, Field(ge=0)] | None = Field(None, alias="budgetUSD")
    """The key's monthly budget, if it has one."""


class CountedSpend(StatusModel):
    """How much of one router replica's counter for one key is already in the totals."""

    replica: Annotated[str, Field(max_length=MAX_SHORT)]
    """Router pod name and process id."""
    key: Annotated[str, Field(max_length=64)]
    """Key policy name."""
    usd: Annotated[float, Field(ge=0)] = 0.0
    """The counter's value when it was last added."""


class AccessStatus(StatusModel):
    """Cloud spend per API key for the current month (UTC), aggregated by the operator from every router
    replica (written by field manager flotilla-spend)."""

    month: Annotated[str, Field(max_length=7)]
    """The month, YYYY-MM."""
    keys: Annotated[list[KeySpend], Field(max_length=64)] = Field(default_factory=list)
    """Spend per key."""
    summary: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    """name=$USD per key (the SPEND column of kubectl get mf)."""
    counted: Annotated[list[CountedSpend], Field(max_length=4096)] = Field(default_factory=list)
    """Per replica and key, what is already counted (so a restart neither loses nor repeats spend)."""


CandidateState = Literal["Shadowing", "Promoted", "RolledBack"]


class CountedShadow(StatusModel):
    """How much of one router replica's shadow counters is already in a candidate's totals."""

    replica: Annotated[str, Field(max_length=MAX_SHORT)]
    """Router pod name and process id."""
    scored: Annotated[int, Field(ge=0)] = 0
    """The replica's scored counter when it was last added."""
    agreed: Annotated[int, Field(ge=0)] = 0
    """Its agreed counter then."""
    errors: Annotated[int, Field(ge=0)] = 0
    """Its errors counter then."""


class CandidateStatus(StatusModel):
    """One task's candidate model under shadow evaluation (routing.tasks[].distillation.shadow), its
    scores summed over the router replicas, and the decision (written by field manager flotilla-promotion)."""

    task: Annotated[str, Field(max_length=64)]
    """The task."""
    model: Annotated[str, Field(max_length=64)]
    """The candidate (a fleet model)."""
    state: CandidateState = "Shadowing"
    """Shadowing (mirrored and scored), Promoted (the task's first model in the router config) or
    RolledBack (no longer mirrored; the task routes as its spec says)."""
    scored: Annotated[int, Field(ge=0)] = 0
    """Mirrored requests scored (agreed, disagreed or the candidate failed)."""
    agreed: Annotated[int, Field(ge=0)] = 0
    """Scored requests on which the candidate agreed with the served answer."""
    errors: Annotated[int, Field(ge=0)] = 0
    """Scored requests the candidate failed to answer (they count as disagreement)."""
    agreement: Annotated[float, Field(ge=0, le=1)] = 0.0
    """agreed / scored."""
    last_transition_time: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None
    ) = None
    """When the candidate was promoted or rolled back (RFC 3339)."""
    counted: Annotated[list[CountedShadow], Field(max_length=1024)] = Field(default_factory=list)
    """Per router replica, what is already counted (so an operator restart neither loses nor repeats)."""


class CountedTraces(StatusModel):
    """How much of one router replica's capture counter is already in a task's total."""

    replica: Annotated[str, Field(max_length=MAX_SHORT)]
    """Router pod name and process id."""
    captured: Annotated[int, Field(ge=0)] = 0
    """The replica's captured counter when it was last added."""


class TraceStatus(StatusModel):
    """Traces of one capturing task (routing.tasks[].distillation.capture) written by the routers, summed
    over the router replicas (written by field manager flotilla-promotion)."""

    task: Annotated[str, Field(max_length=64)]
    """The task."""
    captured: Annotated[int, Field(ge=0)] = 0
    """Traces captured (durable in a router's spool, on their way to the sink) since capture began; what
    distillation.train.when.traces is compared with."""
    counted: Annotated[list[CountedTraces], Field(max_length=1024)] = Field(default_factory=list)
    """Per router replica, what is already counted (so an operator restart neither loses nor repeats)."""


TrainingPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class TrainingStatus(StatusModel):
    """The latest version of one task's adapter trained by a Job (routing.tasks[].distillation.train), as
    the Job reports it (written by field manager flotilla-training; docs/distillation.md)."""

    task: Annotated[str, Field(max_length=64)]
    """The task."""
    version: Annotated[int, Field(ge=1)]
    """The adapter version (1, 2, ...): the Job <fleet>-train-<task>-v<version> writes it under
    adapters/<fleet>/<task>/v<version>/ in the sink. A version is trained by one Job only, never twice."""
    job: Annotated[str, Field(max_length=63)]
    """The Job's name."""
    phase: TrainingPhase = "Pending"
    """Pending (no pod running: not yet scheduled, or backing off between attempts), Running, Succeeded or
    Failed (the Job's retries are spent or its deadline passed; serving is not touched)."""
    attempts: Annotated[int, Field(ge=0)] = 0
    """Pods the Job started (failed, running and succeeded); it retries up to its backoffLimit."""
    traces: Annotated[int, Field(ge=0)] = 0
    """status.traces[].captured when the Job was created."""
    next_traces: Annotated[int, Field(ge=0)] = 0
    """Captured traces at which the next version starts (traces + when.traces), once this one finished."""
    adapter: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    """Where the Job writes the adapter (its flotilla.dev/adapter annotation)."""
    message: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    """The Job's failure reason and message, or its progress."""
    start_time: Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None = None
    """When the Job was created (RFC 3339)."""
    completion_time: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None
    ) = None
    """When the Job succeeded or failed (RFC 3339)."""


class FleetStatus(StatusModel):
    """What the operator last observed of the fleet."""

    observed_generation: int | None = None
    """metadata.generation the operator last reconciled."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, ModelsReady, RouterReady and Degraded; ClassifierReady with a custom classifier."""
    models: list[ModelStatus] = Field(default_factory=list)
    """Per-model replicas and phase."""
    models_ready: Annotated[str, Field(max_length=32)] | None = None
    """Ready models out of all models, e.g. 2/3 (the MODELS column of kubectl get mf)."""
    endpoint: Annotated[str, Field(max_length=MAX_SHORT)] | None = None
    """The router's in-cluster OpenAI base URL, e.g. http://assistants-router.ai.svc:8080/v1."""

    classifier: ClassifierStatus | None = None
    """The custom classifier the routers use (routing.classifier.model as last accepted); absent with the
    packaged one. When a new one is rejected this stays on the previous one (see ClassifierReady)."""

    autoscaling: list[ModelAutoscaling] | None = None
    """Built-in autoscaler decisions, one per autoscaled model of mode builtin."""

    access: AccessStatus | None = None
    """Cloud spend per API key this month (with spec.access)."""

    candidates: Annotated[list[CandidateStatus], Field(max_length=32)] | None = None
    """Candidate models under shadow evaluation per task, and whether they were promoted or rolled back."""
    candidates_summary: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    """task:model=State agreed/scored per candidate (the CANDIDATES column of kubectl get mf)."""

    traces: Annotated[list[TraceStatus], Field(max_length=64)] | None = None
    """Traces captured per capturing task, summed over the router replicas (docs/distillation.md)."""

    training: Annotated[list[TrainingStatus], Field(max_length=64)] | None = None
    """The latest training Job per task with distillation.train (docs/distillation.md, "Training Job")."""
    training_summary: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    """task=vN Phase per training task (the TRAINING column of kubectl get mf)."""

    packs: Annotated[list[PackStatus], Field(max_length=32)] | None = None
    """The packing plan (models with placement.pack other than none): which models share which pod.
    Models that fit no pod are in the Packed condition."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)


def current_condition(body: Mapping[str, Any], kind: ConditionType) -> dict[str, Any] | None:
    """Condition ``kind`` of a fleet body when it speaks of the fleet's current generation (None while the
    operator has not judged the latest spec): what a client waiting on a change should read."""
    generation = (body.get("metadata") or {}).get("generation")
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("observedGeneration") == generation:
            return dict(cond)
    return None
