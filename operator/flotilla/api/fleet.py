"""The ModelFleet resource (`flotilla.dev/v1alpha1`): the spec a platform team writes and the status the
operator reports. The single source of truth for the CRD (`flotilla.api.crd`) and the reference docs.

`ModelFleet.from_body(body)` parses a whole object as the apiserver (or a YAML file) gives it, and raises
`flotilla.errors.InvalidSpecError` with a one-line message when it is invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from flotilla import errors
from flotilla.api import messages
from flotilla.api.access import AccessKey, AccessSpec, KeyLimits
from flotilla.api.common import MAX_LIST, SpecModel, cel_rules, object_default
from flotilla.api.distillation import DistillationSpec
from flotilla.api.modelspec import Accelerator, Autoscaling, ModelSource, ModelSpec, Replicas
from flotilla.api.placement import AUTO, NONE, FleetPlacement, PackSpec, Placement
from flotilla.api.routing import ApiKeyRef, FallbackSpec, RouterSpec, RoutingSpec, TaskMatchSpec, TaskSpec
from flotilla.api.status import Condition, FleetStatus, ModelStatus

GROUP = "flotilla.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelFleet"
PLURAL = "modelfleets"
SINGULAR = "modelfleet"
SHORT_NAME = "mf"
MAX_FLEET_NAME = 30
"""Fleet names stay short so `<fleet>-<model>` (model names: at most 32) fits a 63-character object name."""

# No `has(x) ? x : []` here: the empty list literal makes the element type dyn and the apiserver's cost
# estimate unbounded (it rejects the CRD); guard with `has(x) && ...` instead.


class ModelFleetSpec(SpecModel):
    """A fleet of small models with cloud fallbacks behind one OpenAI-compatible router."""

    model_config = cel_rules(
        ("(has(self.models) && size(self.models) > 0) || (has(self.fallbacks) && size(self.fallbacks) > 0)",
         messages.EMPTY_FLEET),
        ("!has(self.models) || self.models.all(a, self.models.exists_one(b, b.name == a.name))",
         messages.DUPLICATE_MODEL),
        ("!has(self.fallbacks) || self.fallbacks.all(a, self.fallbacks.exists_one(b, b.name == a.name))",
         messages.DUPLICATE_FALLBACK),
        ("!has(self.models) || !has(self.fallbacks) || "
         "self.fallbacks.all(f, !self.models.exists(m, m.name == f.name))",
         messages.NAME_CLASH),
        ("!has(self.routing) || !has(self.routing.tasks) || "
         "self.routing.tasks.all(a, self.routing.tasks.exists_one(b, b.name == a.name))",
         messages.DUPLICATE_TASK),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, !has(t.models) || "
         "t.models.all(n, has(self.models) && self.models.exists(m, m.name == n)))",
         messages.UNKNOWN_ROUTE_MODEL),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, !has(t.fallbacks) || "
         "t.fallbacks.all(n, has(self.fallbacks) && self.fallbacks.exists(f, f.name == n)))",
         messages.UNKNOWN_ROUTE_FALLBACK),
        ("!has(self.routing) || !has(self.routing.defaultTask) || "
         "(has(self.routing.tasks) && self.routing.tasks.exists(t, t.name == self.routing.defaultTask)) || "
         "(has(self.models) && "
         "self.models.exists(m, has(m.tasks) && m.tasks.exists(x, x == self.routing.defaultTask)))",
         messages.UNKNOWN_DEFAULT_TASK),
        ("!has(self.router) || !has(self.router.serviceType) || self.router.serviceType == 'ClusterIP' || "
         "has(self.access)",
         messages.OPEN_EXPOSED_ROUTER),
        ("!has(self.packs) || self.packs.all(a, self.packs.exists_one(b, b.name == a.name))",
         messages.DUPLICATE_PACK),
        (f"!has(self.placement) || !has(self.placement.pack) || self.placement.pack in ['{AUTO}', '{NONE}'] "
         "|| (has(self.packs) && self.packs.exists(p, p.name == self.placement.pack))",
         messages.UNKNOWN_FLEET_PACK),
        (f"!has(self.models) || self.models.all(m, !has(m.placement) || !has(m.placement.pack) || "
         f"m.placement.pack in ['{AUTO}', '{NONE}'] || "
         "(has(self.packs) && self.packs.exists(p, p.name == m.placement.pack)))",
         messages.UNKNOWN_MODEL_PACK),
        ("has(self.distillation) || !has(self.routing) || !has(self.routing.tasks) || "
         "self.routing.tasks.all(t, !has(t.distillation) || !has(t.distillation.capture))",
         messages.CAPTURE_WITHOUT_SINK),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.shadow) || "
         "(has(self.models) && self.models.exists(m, m.name == t.distillation.shadow.model)))",
         messages.SHADOW_UNKNOWN_MODEL),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.shadow) || !has(t.distillation.shadow.judge) || "
         "(has(self.fallbacks) && self.fallbacks.exists(f, f.name == t.distillation.shadow.judge)))",
         messages.SHADOW_UNKNOWN_JUDGE),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.train) || !has(t.distillation.train.shadow) || "
         "!has(t.distillation.train.shadow.judge) || (has(self.fallbacks) && "
         "self.fallbacks.exists(f, f.name == t.distillation.train.shadow.judge)))",
         messages.TRAIN_SHADOW_UNKNOWN_JUDGE),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.shadow) || !has(t.models) || "
         "!t.models.exists(n, n == t.distillation.shadow.model))",
         messages.SHADOW_MODEL_ROUTED),
        ("has(self.distillation) || !has(self.routing) || !has(self.routing.tasks) || "
         "self.routing.tasks.all(t, !has(t.distillation) || !has(t.distillation.train))",
         messages.TRAIN_WITHOUT_SINK),
        ("!has(self.routing) || !has(self.routing.tasks) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.train) || "
         "(has(self.models) && self.models.exists(m, m.name == t.distillation.train.base)))",
         messages.TRAIN_UNKNOWN_BASE),
        ("!has(self.routing) || !has(self.routing.tasks) || !has(self.models) || self.routing.tasks.all(t, "
         "!has(t.distillation) || !has(t.distillation.train) || "
         "self.models.all(m, m.name != t.distillation.train.base || "
         "(m.runtime == 'llamacpp' && !m.source.uri.startsWith('hf://')) || "
         "(m.runtime == 'vllm' && !m.source.uri.startsWith('file://'))))",
         messages.TRAIN_BASE_RUNTIME),
    )  # fmt: skip

    models: Annotated[list[ModelSpec], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """The fleet's own models (at most 32)."""
    fallbacks: Annotated[list[FallbackSpec], Field(max_length=16)] = Field(default_factory=list)
    """Cloud or external models used when the fleet's models cannot answer (at most 16)."""
    routing: RoutingSpec = Field(default_factory=RoutingSpec, json_schema_extra=object_default())
    """How requests are classified into tasks and routed."""
    router: RouterSpec = Field(default_factory=RouterSpec, json_schema_extra=object_default())
    """The router pods."""
    placement: FleetPlacement = Field(default_factory=FleetPlacement, json_schema_extra=object_default())
    """The default placement of the models (pack none: one pod per model)."""
    packs: Annotated[list[PackSpec], Field(max_length=16)] = Field(default_factory=list)
    """Named packs with their own memory budget and options (at most 16); models join one with
    placement.pack."""
    access: AccessSpec | None = None
    """Who may call the router (API keys and their limits and cloud budgets); the router is open without
    it, which only a ClusterIP router Service may be."""
    distillation: DistillationSpec | None = None
    """Trace capture for distillation: the sink and redaction (docs/distillation.md). The tasks that
    capture say so in `routing.tasks[].distillation`."""

    def model(self, name: str) -> ModelSpec:
        """The model with that name (KeyError if none)."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    def task_models(self, task: TaskSpec) -> list[str]:
        """The models the task routes to, in order: its `models`, else those whose `tasks` name it."""
        if task.models is not None:
            return list(task.models)
        return [m.name for m in self.models if task.name in m.tasks]

    def pack_of(self, model: ModelSpec) -> str:
        """The pack a model is placed in: its own placement.pack, else the fleet's (none: not packed)."""
        return model.placement.pack or self.placement.pack

    @model_validator(mode="after")
    def _consistent(self) -> ModelFleetSpec:
        model_names = [m.name for m in self.models]
        fallback_names = [f.name for f in self.fallbacks]
        task_names = [t.name for t in self.routing.tasks]
        if not model_names and not fallback_names:
            raise ValueError(messages.EMPTY_FLEET)
        for names, message in (
            (model_names, messages.DUPLICATE_MODEL),
            (fallback_names, messages.DUPLICATE_FALLBACK),
            (task_names, messages.DUPLICATE_TASK),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{message} ({', '.join(duplicates)})")
        clash = sorted(set(model_names) & set(fallback_names))
        if clash:
            raise ValueError(f"{messages.NAME_CLASH} ({', '.join(clash)})")
        for task in self.routing.tasks:
            for name in task.models or []:
                if name not in model_names:
                    raise ValueError(f"{messages.UNKNOWN_ROUTE_MODEL} (task {task.name!r} names {name!r})")
            for name in task.fallbacks or []:
                if name not in fallback_names:
                    raise ValueError(f"{messages.UNKNOWN_ROUTE_FALLBACK} (task {task.name!r} names {name!r})")
        default = self.routing.default_task
        if (
            default is not None
            and default not in task_names
            and not any(default in m.tasks for m in self.models)
        ):
            raise ValueError(f"{messages.UNKNOWN_DEFAULT_TASK} (got {default!r})")
        if self.router.service_type != "ClusterIP" and self.access is None:
            raise ValueError(messages.OPEN_EXPOSED_ROUTER)
        pack_names = [p.name for p in self.packs]
        duplicates = sorted({n for n in pack_names if pack_names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{messages.DUPLICATE_PACK} ({', '.join(duplicates)})")
        known = {AUTO, NONE, *pack_names}
        if self.placement.pack not in known:
            raise ValueError(f"{messages.UNKNOWN_FLEET_PACK} (got {self.placement.pack!r})")
        for model in self.models:
            if model.placement.pack is not None and model.placement.pack not in known:
                raise ValueError(
                    f"{messages.UNKNOWN_MODEL_PACK} (model {model.name!r} names {model.placement.pack!r})"
                )
        capturing = [t.name for t in self.routing.tasks if t.distillation and t.distillation.capture]
        if capturing and self.distillation is None:
            raise ValueError(f"{messages.CAPTURE_WITHOUT_SINK} (tasks {', '.join(capturing)})")
        self._check_shadows(model_names, fallback_names)
        self._check_training(model_names, fallback_names)
        return self

    def _check_training(self, model_names: list[str], fallback_names: list[str]) -> None:
        for task in self.routing.tasks:
            train = task.distillation.train if task.distillation else None
            if train is None:
                continue
            where = f"(task {task.name!r} names {train.base!r})"
            if self.distillation is None:
                raise ValueError(f"{messages.TRAIN_WITHOUT_SINK} (task {task.name!r})")
            if train.base not in model_names:
                raise ValueError(f"{messages.TRAIN_UNKNOWN_BASE} {where}")
            base = self.model(train.base)
            if base.train_format is None:
                raise ValueError(f"{messages.TRAIN_BASE_RUNTIME} {where}")
            judge = train.shadow.judge
            if judge is not None and judge not in fallback_names:
                names = f"(task {task.name!r} names {judge!r})"
                raise ValueError(f"{messages.TRAIN_SHADOW_UNKNOWN_JUDGE} {names}")

    def _check_shadows(self, model_names: list[str], fallback_names: list[str]) -> None:
        for task in self.routing.tasks:
            shadow = task.distillation.shadow if task.distillation else None
            if shadow is None:
                continue
            where = f"(task {task.name!r} names {{!r}})"
            if shadow.model not in model_names:
                raise ValueError(f"{messages.SHADOW_UNKNOWN_MODEL} {where.format(shadow.model)}")
            if shadow.judge is not None and shadow.judge not in fallback_names:
                raise ValueError(f"{messages.SHADOW_UNKNOWN_JUDGE} {where.format(shadow.judge)}")
            routed = self.task_models(task)
            if shadow.model in routed:
                raise ValueError(f"{messages.SHADOW_MODEL_ROUTED} {where.format(shadow.model)}")


class ObjectMeta(BaseModel):
    """The parts of metadata Flotilla uses; the rest is ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _short_name(self) -> ObjectMeta:
        if len(self.name) > MAX_FLEET_NAME:
            raise ValueError(f"{messages.FLEET_NAME} (got {len(self.name)})")
        return self


class ModelFleet(BaseModel):
    """A whole ModelFleet object: apiVersion, kind, metadata, spec and (when read from the cluster) status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: ModelFleetSpec
    status: FleetStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ModelFleet:
        """Parse a whole object (apiserver body or YAML document); InvalidSpecError says what is wrong."""
        if body.get("apiVersion", API_VERSION) != API_VERSION or body.get("kind", KIND) != KIND:
            raise errors.InvalidSpecError(
                f"expected apiVersion {API_VERSION} and kind {KIND}, "
                f"got {body.get('apiVersion')} {body.get('kind')}"
            )
        try:
            return cls.model_validate(dict(body))
        except ValidationError as exc:
            raise errors.InvalidSpecError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, `path: message`, with pydantic's prefixes removed."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in error["loc"]).replace(".[", "[")
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return "; ".join(lines)


__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "Accelerator",
    "AccessKey",
    "AccessSpec",
    "ApiKeyRef",
    "Autoscaling",
    "Condition",
    "FallbackSpec",
    "FleetPlacement",
    "FleetStatus",
    "KeyLimits",
    "ModelFleet",
    "ModelFleetSpec",
    "ModelSource",
    "ModelSpec",
    "ModelStatus",
    "ObjectMeta",
    "PackSpec",
    "Placement",
    "Replicas",
    "RouterSpec",
    "RoutingSpec",
    "TaskMatchSpec",
    "TaskSpec",
    "describe_errors",
]
