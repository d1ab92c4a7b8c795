"""Trained adapter versions as fleet models: what a successful training Job changes in what the fleet serves.

The operator never edits the user's spec. It renders, routes, scales and evaluates the fleet as
``served(fleet)`` gives it: for a task with ``distillation.train``, the newest version that trained
successfully (``status.training``) becomes the model ``<base>-<task>-v<N>`` (the base model with the
version's adapter from the sink) and the task's shadow candidate, evaluated as ``train.shadow`` says; the
newest version the promotion rule promoted (``status.candidates``) stays the task's first model while a
newer version shadows behind it. Pure: the same fleet and status always give the same result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from flotilla.api.common import MAX_NAME
from flotilla.api.distillation import ShadowSpec, TrainSpec
from flotilla.api.fleet import ModelFleet, ModelSpec, TaskSpec
from flotilla.api.modelspec import ModelSource
from flotilla.render import training

ADAPTER_FILE = "adapter.gguf"
_VERSION = re.compile(r".+-v([1-9][0-9]*)")


@dataclasses.dataclass(frozen=True)
class Versions:
    """One task's trained versions that serve or are evaluated (None: none)."""

    promoted: int | None
    """The newest promoted version: the task's first model."""
    candidate: int | None
    """The newest version that trained successfully, when newer than ``promoted``: the task's candidate."""


def model_name(base: str, task: str, version: int) -> str:
    """``<base>-<task>-v<N>``; past the 32 characters of a model name, the base cut short and the task
    replaced by a hash (still one name per base, task and version)."""
    name = f"{base}-{task}-v{version}"
    if len(name) <= MAX_NAME:
        return name
    suffix = f"-{hashlib.sha256(f'{base}/{task}'.encode()).hexdigest()[:8]}-v{version}"
    return base[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def _train(task: TaskSpec) -> TrainSpec | None:
    return task.distillation.train if task.distillation is not None else None


def version_of(task: TaskSpec, model: str) -> int | None:
    """The version of ``task``'s adapter that the model named ``model`` serves (None: not a trained one)."""
    train = _train(task)
    found = _VERSION.fullmatch(model)
    if train is None or found is None:
        return None
    version = int(found.group(1))
    return version if model_name(train.base, task.name, version) == model else None


def versions(fleet: ModelFleet, task: TaskSpec) -> Versions:
    """The task's promoted version and candidate, from ``status.training`` (the newest version, once it
    Succeeded) and ``status.candidates`` (versions already evaluated, so a newer Job that is still running
    or failed does not take away the one being shadowed)."""
    status = fleet.status
    if _train(task) is None or status is None:
        return Versions(None, None)
    known = {e.version for e in status.training or [] if e.task == task.name and e.phase == "Succeeded"}
    promoted = 0
    for entry in status.candidates or []:
        version = version_of(task, entry.model) if entry.task == task.name else None
        if version is not None:
            known.add(version)
            if entry.state == "Promoted":
                promoted = max(promoted, version)
    newest = max(known, default=0)
    return Versions(promoted or None, newest if newest > promoted else None)


def version_model(fleet: ModelFleet, task: TaskSpec, version: int) -> ModelSpec:
    """The base model with version ``version`` of the task's adapter, read from where the Job wrote it: the
    adapter GGUF for a llamacpp base, the whole versioned directory (a PEFT adapter) for a vllm base.

    It keeps the base's args: serve the base with the chat template the fine-tune trains with (gemma)."""
    train = _train(task)
    distillation = fleet.spec.distillation
    if train is None or distillation is None:  # the spec's validators refuse both
        raise ValueError(f"task {task.name!r} trains no adapter")
    base = fleet.spec.model(train.base)
    key = training.adapter_prefix(fleet, task.name, version)
    if base.train_format == "gguf":
        key += ADAPTER_FILE
    s3, volume = distillation.sink.s3, distillation.sink.volume
    if s3 is not None:
        adapter = ModelSource(
            uri=f"s3://{s3.bucket}/{s3.prefix}{key}",
            endpoint=s3.endpoint,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
        )
    else:
        assert volume is not None  # SinkSpec holds exactly one
        sub_path = volume.sub_path.strip("/")
        adapter = ModelSource(uri=f"pvc://{volume.claim_name}/{sub_path + '/' if sub_path else ''}{key}")
    return base.model_copy(
        update={"name": model_name(base.name, task.name, version), "adapter": adapter, "tasks": [task.name]}
    )


def served(fleet: ModelFleet) -> ModelFleet:
    """The fleet as the operator serves it: each training task's promoted version first in its models and
    its newest version as its candidate (module docstring). ValueError when a version's model name is
    already a model of the spec."""
    models = list(fleet.spec.models)
    tasks: list[TaskSpec] = []
    changed = False
    for task in fleet.spec.routing.tasks:
        found = versions(fleet, task)
        train = _train(task)
        if train is None or (found.promoted is None and found.candidate is None):
            tasks.append(task)
            continue
        changed = True
        routed = fleet.spec.task_models(task)
        added: list[ModelSpec] = []
        for version in (found.promoted, found.candidate):
            if version is not None:
                added.append(version_model(fleet, task, version))
        clash = [m.name for m in added if any(m.name == existing.name for existing in models)]
        if clash:
            raise ValueError(
                f"task {task.name!r}: the trained version's model name {clash[0]!r} is already a model of "
                "spec.models; rename that model"
            )
        models += added
        if found.promoted is not None:
            routed = [added[0].name, *routed]
        shadow = None
        if found.candidate is not None:
            settings = train.shadow.model_dump(by_alias=False)
            shadow = ShadowSpec(model=added[-1].name, **settings)
        assert task.distillation is not None  # _train found train in it
        distillation = task.distillation.model_copy(update={"shadow": shadow})
        tasks.append(task.model_copy(update={"models": routed, "distillation": distillation}))
    if not changed:
        return fleet
    routing = fleet.spec.routing.model_copy(update={"tasks": tasks})
    spec = fleet.spec.model_copy(update={"models": models, "routing": routing})
    return fleet.model_copy(update={"spec": spec})
