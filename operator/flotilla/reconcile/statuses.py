"""Fleet status from observed child Deployments, and the Events its transitions deserve. Pure, no I/O.

The controller feeds this from its watch-maintained index of Deployments, so the status follows the
cluster as it changes (no polling). Conditions keep their ``lastTransitionTime`` while their status holds,
and :func:`transitions` compares the previous status to the new one, so an operator restart (which seeds
"previous" from the stored status) does not repeat Events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from flotilla.api import status as status_api
from flotilla.api.common import MAX_TEXT
from flotilla.packing import plans
from flotilla.reconcile import placing, planning, vetting

Phase = status_api.ModelPhase
SERVING: frozenset[str] = frozenset({"Ready", "ScaledToZero"})
"""Phases that count as ready: a model scaled to zero is served by the router's cold-start path."""


@dataclasses.dataclass(frozen=True)
class DeploymentView:
    """What status needs from one child Deployment (small, so the watch index stays small)."""

    name: str
    component: str
    model: str | None
    replicas: int
    ready: int
    updated: int
    generation: int
    observed_generation: int
    failure: str | None = None
    packed: tuple[str, ...] = ()
    """A pack's Deployment (component pack): the models its pods serve."""
    pack: str | None = None
    """A pack's Deployment: the planned pod's name (flotilla.dev/pack)."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> DeploymentView:
        """Summarise a Deployment; a stalled rollout or a replica failure becomes ``failure``."""
        meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
        labels = meta.get("labels") or {}
        failure = None
        for cond in status.get("conditions") or []:
            stalled = cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded"
            if stalled or (cond.get("type") == "ReplicaFailure" and cond.get("status") == "True"):
                failure = f"{cond.get('reason')}: {cond.get('message', '')}".rstrip(": ")
        replicas = spec.get("replicas")
        return cls(
            name=str(meta.get("name")),
            component=str(labels.get(planning.COMPONENT_LABEL, "")),
            model=labels.get(planning.MODEL_LABEL),
            replicas=1 if replicas is None else int(replicas),
            ready=int(status.get("readyReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            failure=failure,
            pack=labels.get(planning.PACK_LABEL),
            packed=tuple(
                m for m in str((meta.get("annotations") or {}).get(planning.PACK_MODELS, "")).split(",") if m
            ),
        )

    def phase(self) -> tuple[Phase, str]:
        """The phase and a one-line reason a person can act on."""
        if self.failure:
            return "Degraded", self.failure
        if self.replicas == 0:
            return "ScaledToZero", "scaled to zero; the router starts it on demand"
        rolled_out = self.observed_generation >= self.generation and self.updated >= self.replicas
        if self.ready >= self.replicas and rolled_out:
            return "Ready", f"{self.ready}/{self.replicas} replicas ready"
        return "Progressing", f"{self.ready}/{self.replicas} replicas ready"


UNSCHEDULABLE = "pods unschedulable: "
"""Marks the scheduler's message in a model's (or RouterReady's) message."""
FAILING = "pods failing: "
"""Marks why a placed pod does not start (a failed download, an image that cannot be pulled...)."""
STUCK_WAITING = frozenset(
    {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
     "CreateContainerError", "RunContainerError"}
)  # fmt: skip
"""Waiting reasons that do not pass by themselves (ContainerCreating and PodInitializing do)."""
MAX_CAUSE = 300


def scheduling_failure(pod_status: Mapping[str, Any] | None) -> str | None:
    """Why the scheduler cannot place a pod (PodScheduled=False, reason Unschedulable), e.g. "0/3 nodes are
    available: 1 Insufficient nvidia.com/gpu, ..."; None when it is placed or not judged yet."""
    for cond in (pod_status or {}).get("conditions") or []:
        scheduled = (cond.get("type"), cond.get("status"), cond.get("reason"))
        if scheduled == ("PodScheduled", "False", "Unschedulable"):
            return str(cond.get("message") or "no node fits the pod")
    return None


def start_failure(pod_status: Mapping[str, Any] | None) -> str | None:
    """Why a placed pod's containers do not start, e.g. "download exited 1: flotilla objects: s3://b/k ->
    /models/k at http://store:8333: 404: Not Found" (the last line of the container's termination message:
    its log's, for the one-shot containers Flotilla renders); None when they start or are still starting."""
    status = pod_status or {}
    for kind in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(kind) or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            ended = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
            failed_init = kind == "initContainerStatuses" and ended.get("exitCode", 0) != 0
            if waiting.get("reason") not in STUCK_WAITING and not failed_init:
                continue
            if ended.get("exitCode", 0) != 0:
                lines = str(ended.get("message") or ended.get("reason") or "").strip().splitlines()
                cause = f"exited {ended['exitCode']}" + (f": {lines[-1]}" if lines else "")
            else:
                cause = f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
            return f"{container.get('name')} {cause}"[:MAX_CAUSE]
    return None


def pod_trouble(pod_status: Mapping[str, Any] | None) -> str | None:
    """Why a pod does not serve, marked for status: the scheduler cannot place it (UNSCHEDULABLE) or it
    cannot start (FAILING); None when neither is known."""
    if (unplaced := scheduling_failure(pod_status)) is not None:
        return UNSCHEDULABLE + unplaced
    if (failing := start_failure(pod_status)) is not None:
        return FAILING + failing
    return None


def reports_pod_trouble(status: Mapping[str, Any] | None) -> bool:
    """True when a status names some pod's trouble (so a pod's news may clear it)."""
    messages = [str(m.get("message", "")) for m in _models(status)]
    messages += [
        str(c.get("message", "")) for c in (status or {}).get("conditions") or [] if isinstance(c, Mapping)
    ]
    return any(mark in message for message in messages for mark in (UNSCHEDULABLE, FAILING))


@dataclasses.dataclass(frozen=True)
class PodTrouble:
    """A pod of a fleet that the scheduler cannot place or that cannot start (what the pods index keeps)."""

    component: str
    model: str | None
    """The model's name; for a pack's pod (component pack), the pack pod's name (flotilla.dev/pack)."""
    message: str
    """Marked: starts with UNSCHEDULABLE or FAILING."""


@dataclasses.dataclass(frozen=True)
class Observed:
    """Everything status is computed from, gathered by the controller."""

    generation: int
    models: Sequence[str]
    deployments: Sequence[DeploymentView]
    applied_generation: int | None
    endpoint: str | None
    spec_error: str | None = None
    spec_error_reason: str = "InvalidSpec"
    """The Degraded and Ready reason when ``spec_error`` is set (NotAllowed: outside the allow-lists)."""
    model_errors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Models that cannot run as specified though the spec is valid (e.g. KEDA missing), with why."""
    name_conflict: str | None = None
    """Why the generation was not applied: objects the fleet does not control have its children's names."""
    classifier: vetting.Verdict | None = None
    """The vetting of the spec's classifier; None: not vetted by this process yet (the stored
    ClassifierReady condition and status.classifier stand)."""
    access_problems: Sequence[str] | None = None
    """Keys of spec.access left out, with why; None: the fleet has no spec.access."""
    pod_troubles: Sequence[PodTrouble] = ()
    """The fleet's pods the scheduler cannot place."""
    packing: plans.Plan | None = None
    """The packing plan of the applied generation; None: not planned by this process yet (the stored
    status.packs and Packed condition stand)."""
    trained: tuple[bool, str, str] | None = None
    """The Trained condition (ok, reason, message) from status.training; None: no task trains."""


@dataclasses.dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to post on the fleet."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _condition(
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
    gen: int,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind) or {}
    since = before.get("lastTransitionTime") if before.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": gen,
    }


def compute(observed: Observed, previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The fleet's ``status`` (camelCase dict, ready for the status subresource)."""
    previous = previous or {}
    prev_conds = {str(c.get("type")): c for c in previous.get("conditions") or [] if isinstance(c, Mapping)}
    by_model = {m: d for d in observed.deployments if d.component == "pack" for m in d.packed}
    by_model |= {d.model: d for d in observed.deployments if d.component == "model" and d.model}
    router = next((d for d in observed.deployments if d.component == "router"), None)
    gen = observed.applied_generation if observed.applied_generation is not None else 0

    troubles = _troubles_by_component(observed.pod_troubles)
    models: list[dict[str, Any]] = []
    for name in observed.models:
        view = by_model.get(name)
        phase, message = view.phase() if view else ("Pending", "Deployment not created yet")
        if name in observed.model_errors:
            phase, message = "Degraded", observed.model_errors[name]
        elif phase not in SERVING and (where := _pods_of(name, view)) in troubles:
            message = f"{message}; {troubles[where]}"[:MAX_TEXT]
        entry = {
            "name": name,
            "phase": phase,
            "readyReplicas": view.ready if view else 0,
            "desiredReplicas": view.replicas if view else 0,
            "message": message,
        }
        pod = observed.packing.pod_of(name) if observed.packing else None
        if pod is not None:
            entry["pack"] = pod.name
        models.append(entry)
    not_ready = [m for m in models if m["phase"] not in SERVING]
    stuck = [m for m in not_ready if troubles.get(_pods_of(m["name"], by_model.get(m["name"])), "")
             .startswith(UNSCHEDULABLE)]  # fmt: skip
    degraded = [m for m in models if m["phase"] == "Degraded"]
    router_phase, router_message = router.phase() if router else ("Pending", "Deployment not created yet")
    if router_phase not in SERVING and ("router", None) in troubles:
        router_message = f"{router_message}; {troubles[('router', None)]}"
    current = observed.applied_generation == observed.generation

    models_ok = not not_ready
    models_msg = "; ".join(f"{m['name']}: {m['phase']} ({m['message']})" for m in not_ready)
    models_reason = "ModelsUnschedulable" if stuck else "ModelsNotReady"
    conditions = [
        _condition("ModelsReady", models_ok, "AllModelsReady" if models_ok else models_reason,
                   (models_msg or f"{len(models)} of {len(models)} models ready")[:MAX_TEXT], prev_conds, now,
                   gen),
        _condition("RouterReady", router_phase == "Ready",
                   "RouterAvailable" if router_phase == "Ready" else f"Router{router_phase}",
                   router_message, prev_conds, now, gen),
    ]  # fmt: skip
    if observed.spec_error:
        bad: tuple[bool, str, str] = (True, observed.spec_error_reason, observed.spec_error)
    elif observed.name_conflict:
        bad = (True, "NameConflict", observed.name_conflict[:MAX_TEXT])
    elif degraded or router_phase == "Degraded":
        names = [m["name"] for m in degraded] + (["router"] if router_phase == "Degraded" else [])
        bad = (True, "ChildDegraded", "degraded: " + ", ".join(names))
    else:
        bad = (False, "AsExpected", "no degraded models")
    conditions.append(_condition("Degraded", *bad, prev_conds, now, gen))
    if observed.spec_error:
        ready = (False, observed.spec_error_reason, observed.spec_error)
    elif bad[1] == "NameConflict":
        ready = (False, bad[1], bad[2])
    elif not current:
        ready = (False, "Reconciling", f"generation {observed.generation} not applied yet")
    elif bad[0]:
        ready = (False, bad[1], bad[2])
    elif not models_ok:
        ready = (False, models_reason, models_msg[:MAX_TEXT])
    elif router_phase != "Ready":
        ready = (False, "RouterNotReady", router_message)
    else:
        ready = (True, "FleetReady", f"{len(models)} models and the router are ready")
    conditions.insert(0, _condition("Ready", *ready, prev_conds, now, gen))
    classifier = previous.get("classifier")
    if observed.classifier is None:
        if "ClassifierReady" in prev_conds:
            conditions.append(dict(prev_conds["ClassifierReady"]))
    elif observed.classifier.wanted:
        conditions.append(_classifier_condition(observed.classifier, prev_conds, now, gen))
        classifier = observed.classifier.accepted.to_status() if observed.classifier.accepted else None
    else:
        classifier = None

    if observed.access_problems is not None:
        problems = observed.access_problems
        conditions.append(
            _condition("AccessReady", not problems, "KeysMissing" if problems else "KeysLoaded",
                       "; ".join(problems)[:MAX_TEXT] or "every API key was read", prev_conds, now, gen)
        )  # fmt: skip

    packs = previous.get("packs")
    if observed.packing is None:
        if "Packed" in prev_conds:
            conditions.append(dict(prev_conds["Packed"]))
    elif observed.packing.wanted:
        conditions.append(_condition("Packed", *placing.condition(observed.packing), prev_conds, now, gen))
        packs = placing.packs(observed.packing)
    else:
        packs = None

    if observed.trained is not None:
        ok, reason, text = observed.trained
        conditions.append(_condition("Trained", ok, reason, text[:MAX_TEXT], prev_conds, now, gen))

    status: dict[str, Any] = {
        "observedGeneration": gen,
        "conditions": conditions,
        "models": models,
        "modelsReady": f"{len(models) - len(not_ready)}/{len(models)}",
    }
    if packs:
        status["packs"] = packs
    if observed.endpoint:
        status["endpoint"] = observed.endpoint
    if classifier:
        status["classifier"] = classifier
    return status_api.FleetStatus.model_validate(status).to_wire()  # the CRD's schema, checked here


def _pods_of(model: str, view: DeploymentView | None) -> tuple[str, str | None]:
    """The (component, name) key of the pods serving a model: its own, or its pack's."""
    if view is not None and view.component == "pack":
        return ("pack", view.pack)
    return ("model", model)


def _troubles_by_component(pods: Sequence[PodTrouble]) -> dict[tuple[str, str | None], str]:
    """The marked trouble per (component, model), the first pod's (sorted, so it does not flap)."""
    found: dict[tuple[str, str | None], str] = {}
    for pod in sorted(pods, key=lambda p: (p.component, p.model or "", p.message)):
        found.setdefault((pod.component, pod.model), pod.message)
    return found


def _classifier_condition(
    verdict: vetting.Verdict, previous: Mapping[str, Mapping[str, Any]], now: str, gen: int
) -> dict[str, Any]:
    """ClassifierReady: the spec's classifier is the one the routers get, or why it is not."""
    accepted = verdict.accepted
    if verdict.error is None and accepted is not None:
        message = (
            f"classifier {accepted.version} (sha256 {accepted.sha256[:12]}) from {accepted.url}: "
            f"tasks {', '.join(accepted.tasks)}"
        )
        return _condition(
            "ClassifierReady", True, "ClassifierAccepted", message[:MAX_TEXT], previous, now, gen
        )
    kept = f"classifier {accepted.version} from {accepted.url}" if accepted else "the packaged classifier"
    message = f"{verdict.error}; the routers keep {kept}"
    return _condition("ClassifierReady", False, "ClassifierRejected", message[:MAX_TEXT], previous, now, gen)


def condition_status(status: Mapping[str, Any] | None, kind: str) -> str | None:
    """The status of one condition ("True" or "False"), None when absent."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def transitions(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[Notice]:
    """Events for notable changes between two statuses: fleet (not) ready, model degraded / recovered, a
    model that no longer fits the packing plan."""
    notices: list[Notice] = []
    was_ready = condition_status(previous, "Ready") == "True"
    if condition_status(current, "Ready") == "True" and not was_ready:
        endpoint = current.get("endpoint")
        notices.append(
            Notice("Normal", "FleetReady", f"all models and the router are ready; endpoint {endpoint}")
        )
    elif was_ready and condition_status(current, "Ready") == "False":
        message = next(c["message"] for c in current["conditions"] if c["type"] == "Ready")
        notices.append(Notice("Warning", "FleetNotReady", message))
    notices += _classifier_transitions(previous, current)
    notices += _conflict_transitions(previous, current)
    before_access, after_access = (
        _condition_of(previous, "AccessReady"),
        _condition_of(current, "AccessReady"),
    )
    if (
        after_access is not None
        and after_access["status"] == "False"
        and (before_access or {}).get("message") != after_access["message"]
    ):
        notices.append(Notice("Warning", "AccessKeysMissing", after_access["message"]))
    before_packed, after_packed = _condition_of(previous, "Packed"), _condition_of(current, "Packed")
    if (
        after_packed is not None
        and after_packed["status"] == "False"
        and (before_packed or {}).get("message") != after_packed["message"]
    ):
        notices.append(Notice("Warning", "ModelsDoNotFit", after_packed["message"]))
    before = {m.get("name"): m.get("phase") for m in _models(previous)}
    for model in _models(current):
        then, now = before.get(model.get("name")), model.get("phase")
        if now == "Degraded" and then != "Degraded":
            notices.append(
                Notice("Warning", "ModelDegraded", f"model {model['name']}: {model.get('message')}")
            )
        elif then == "Degraded" and now in SERVING:
            notices.append(Notice("Normal", "ModelRecovered", f"model {model['name']} is {now}"))
    return notices


def _classifier_transitions(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[Notice]:
    """ClassifierRejected (Warning) for each new reason to reject; ClassifierAccepted when one is taken."""
    before, after = _condition_of(previous, "ClassifierReady"), _condition_of(current, "ClassifierReady")
    seen = (before or {}).get("status"), (before or {}).get("message")
    if after is None or seen == (after["status"], after["message"]):
        return []
    if after["status"] == "False":
        return [Notice("Warning", "ClassifierRejected", after["message"])]
    return [Notice("Normal", "ClassifierAccepted", after["message"])]


def _conflict_transitions(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[Notice]:
    """NameConflict (Warning) when the fleet is first refused for a name conflict, or for another one."""
    before, after = _condition_of(previous, "Degraded"), _condition_of(current, "Degraded")
    if after is None or after.get("reason") != "NameConflict":
        return []
    if before is not None and (before.get("reason"), before.get("message")) == (
        "NameConflict",
        after["message"],
    ):
        return []
    return [Notice("Warning", "NameConflict", f"nothing applied: {after['message']}")]


def _condition_of(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def _models(status: Mapping[str, Any] | None) -> Iterable[Mapping[str, Any]]:
    return [m for m in (status or {}).get("models") or [] if isinstance(m, Mapping)]


def endpoint(desired: Iterable[Mapping[str, Any]]) -> str | None:
    """The router's in-cluster OpenAI base URL, from the rendered router Service."""
    for manifest in desired:
        labels = manifest.get("metadata", {}).get("labels") or {}
        if manifest.get("kind") == "Service" and labels.get(planning.COMPONENT_LABEL) == "router":
            meta = manifest["metadata"]
            ports = manifest.get("spec", {}).get("ports") or [{}]
            port = ports[0].get("port", 80)
            return f"http://{meta['name']}.{meta['namespace']}.svc:{port}/v1"
    return None


def same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal statuses, ignoring nothing: used to skip a no-op status write."""
    return dict(a or {}) == dict(b or {})
