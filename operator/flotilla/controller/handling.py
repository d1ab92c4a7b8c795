"""What each kopf handler does: reconcile a fleet, react to a child's event, refresh a fleet's status.

This is the edge where Flotilla's errors meet kopf's: an unrenderable spec becomes ``kopf.PermanentError``
(plus a Degraded condition and a Warning Event), a retryable API failure becomes
``kopf.TemporaryError(delay=…)``. Planning and applying live in ``flotilla.reconcile``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NoReturn

import kopf

from flotilla import autoscaler, errors
from flotilla.api import fleet as fleet_api
from flotilla.controller import contexts, metrics
from flotilla.promoting import collecting as promotion
from flotilla.reconcile import applying, desiring, keying, planning, statuses
from flotilla.reconcile import kube as kubeapi
from flotilla.training import deciding as training_rule
from flotilla.training import launching

Logger = logging.Logger | logging.LoggerAdapter[Any]
RETRY_DELAY = 5.0
"""Seconds before kopf retries after a transient API failure."""
FORBIDDEN_DELAY = 60.0
"""Seconds before retrying after 403: someone has to fix RBAC first."""
STATUS_COALESCE = 0.25
"""Seconds a status refresh waits so a burst of Deployment events for one fleet becomes one write."""
CONFLICT_RETRY_DELAY = 15.0
"""Seconds before trying again a fleet whose children's names are taken: the other objects may go."""
CLASSIFIER_RETRY_DELAY = 30.0
"""Seconds before checking again a classifier that could not be fetched (server down, file not there yet)."""


def fleet_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a fleet body the fleets index keeps (enough to render, own and report)."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", f"{fleet_api.GROUP}/{fleet_api.VERSION}"),
        "kind": body.get("kind", fleet_api.KIND),
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "generation", "labels", "annotations", "deletionTimestamp")
            if meta.get(k) is not None
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _post(
    context: contexts.Context, fleet: Mapping[str, Any], notices: Iterable[statuses.Notice], logger: Logger
) -> None:
    """Log each notice and post it as an Event on the fleet.

    Posted with Flotilla's client rather than ``kopf.event``: kopf's poster retries a refused Event for
    seconds and logs every attempt as an error, which is just noise when the namespace is being deleted.
    """
    for notice in notices:
        level = logging.WARNING if notice.type == "Warning" else logging.INFO
        logger.log(level, "%s: %s", notice.reason, notice.message)
        try:
            await asyncio.to_thread(
                context.kube.post_event, fleet, notice.type, notice.reason, notice.message
            )
        except kubeapi.ApiError as exc:
            quiet = kubeapi.terminating(exc) or exc.status == 404
            logger.log(
                logging.DEBUG if quiet else logging.WARNING, "could not post Event %s: %s", notice.reason, exc
            )


def _temporary(exc: kubeapi.ApiError) -> kopf.TemporaryError:
    delay = FORBIDDEN_DELAY if exc.status == 403 else RETRY_DELAY
    return kopf.TemporaryError(str(exc), delay=delay)


async def handle_reconcile_fleet(
    body: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """Render the fleet, apply its children, prune the unwanted ones and refresh its status."""
    fleet = fleet_entry(body)
    state = context.state(fleet)
    generation = int(fleet["metadata"].get("generation") or 0)
    try:
        desiring.admit(fleet)  # before vetting: a refused fleet's classifier URL is not fetched either
        verdict = await context.vetter.vet(fleet, state.classifier)
        state.classifier_verdict, state.classifier = verdict, verdict.accepted
        state.keys = await keying.resolve(context.kube, fleet)
        desired = context.desired(fleet)
        packing = desiring.packing_plan(fleet)
    except errors.PolicyError as exc:
        refused = f"not allowed: {exc}"
        await _reject(fleet, context, views, logger, "NotAllowed", str(exc), str(exc), refused)
    except errors.InvalidSpecError as exc:
        invalid = f"invalid spec: {exc}"
        await _reject(fleet, context, views, logger, "InvalidSpec", str(exc), str(exc), invalid)
    except kubeapi.ApiError as exc:  # a Secret could not be read for a reason that may pass
        raise _temporary(exc) from None
    try:
        outcome = await applying.reconcile_children(context.kube, fleet, desired)
    except errors.NameConflictError as exc:
        await _refuse(fleet, context, views, logger, exc)
    except kubeapi.ApiError as exc:
        if kubeapi.terminating(exc):  # the namespace is being deleted, and the fleet with it
            logger.info("not reconciling: %s", exc)
            return
        if exc.retryable or exc.status in (403, 404):
            raise _temporary(exc) from None
        # 422 and friends: the apiserver refused a rendered child, so the spec holds a value it rejects.
        rejected = f"the apiserver rejected a child: {exc}"
        await _reject(fleet, context, views, logger, "ApplyRejected", str(exc), rejected, str(exc))
    state.applied_generation, state.spec_error, state.spec_error_reason = generation, None, None
    state.applied_decisions = desiring.decisions(fleet)
    state.name_conflict = None
    state.model_errors = dict(outcome.unserved)
    state.packing = packing
    logger.info("generation %d applied: %s", generation, outcome.describe())
    for model, why in outcome.unserved.items():
        logger.warning("model %s: %s", model, why)
    try:
        await refresh_fleet_status(fleet, context, views, logger)
    except kubeapi.ApiError as exc:  # the children are applied; kopf retries and the status follows
        raise _temporary(exc) from None
    if verdict.retryable:  # applied with the last accepted classifier; the new one may be there later
        raise kopf.TemporaryError(f"classifier: {verdict.error}", delay=CLASSIFIER_RETRY_DELAY)


async def _reject(
    fleet: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
    reason: str,
    event: str,
    spec_error: str,
    message: str,
) -> NoReturn:
    """A spec that cannot be applied: the status's spec error, a Warning Event, and no more retries."""
    state = context.state(fleet)
    state.applied_generation = int(fleet["metadata"].get("generation") or 0)
    state.applied_decisions = desiring.decisions(fleet)  # rejected as it is: not retried on every tick
    state.spec_error, state.spec_error_reason, state.name_conflict = spec_error, reason, None
    await refresh_fleet_status(fleet, context, views, logger)
    await _post(context, fleet, [statuses.Notice("Warning", reason, event)], logger)
    raise kopf.PermanentError(message) from None


async def _refuse(
    fleet: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
    exc: errors.NameConflictError,
) -> NoReturn:
    """Children whose names objects the fleet does not control have: nothing was written. Ready=False and
    Degraded=True with reason NameConflict (the Warning Event comes with that transition, once per
    conflict), and a retry later: the other objects may be deleted meanwhile."""
    state = context.state(fleet)
    state.applied_generation = int(fleet["metadata"].get("generation") or 0)
    state.spec_error, state.spec_error_reason, state.name_conflict = None, None, str(exc)
    try:
        await refresh_fleet_status(fleet, context, views, logger)
    except kubeapi.ApiError as api_exc:
        logger.warning("could not report the name conflict: %s", api_exc)
    raise kopf.TemporaryError(f"name conflict: {exc}", delay=CONFLICT_RETRY_DELAY) from None


async def refresh_fleet_status(
    fleet: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """Recompute the fleet's status from the watched Deployments; write it and post Events if it changed.

    Coalesced per fleet: the first request waits ``STATUS_COALESCE`` seconds, then writes from the newest
    inputs; requests that arrive meanwhile only replace those inputs. A new fleet's Deployments produce a
    burst of events, and on a busy apiserver one write beats five.
    """
    state = context.state(fleet)
    state.pending = (dict(fleet), list(views), logger)
    if state.flushing:
        return
    state.flushing = True
    try:
        await asyncio.sleep(STATUS_COALESCE)
        while state.pending is not None:
            latest, latest_views, latest_logger = state.pending
            state.pending = None
            await _write_status(latest, context, latest_views, latest_logger)
    finally:
        state.flushing = False


async def _write_status(
    fleet: Mapping[str, Any],
    context: contexts.Context,
    views: list[statuses.DeploymentView],
    logger: Logger,
) -> None:
    state = context.state(fleet)
    meta = fleet["metadata"]
    metrics.current().observed(meta["namespace"], meta["name"], views)
    try:
        endpoint = context.endpoint(fleet)
    except errors.InvalidSpecError:
        endpoint = None
    observed = statuses.Observed(
        generation=int(fleet["metadata"].get("generation") or 0),
        models=desiring.model_names(fleet),
        deployments=views,
        applied_generation=state.applied_generation,
        endpoint=endpoint,
        spec_error=state.spec_error,
        spec_error_reason=state.spec_error_reason or "InvalidSpec",
        name_conflict=state.name_conflict,
        model_errors=state.model_errors,
        classifier=state.classifier_verdict,
        access_problems=list(state.keys.problems) if state.keys.wanted else None,
        pod_troubles=context.pod_troubles(fleet),
        packing=state.packing,
        trained=_trained(fleet),
    )
    status = statuses.compute(observed, state.published, _now())
    if state.published is not None and _settled(state.published) == _settled(status):
        return
    try:
        await applying.publish_status(context.kube, fleet, status, fleet_api.PLURAL)
    except kubeapi.ApiError as exc:
        if exc.status == 404:  # the fleet is gone; nothing to report on
            return
        raise
    notices = statuses.transitions(state.published, status)
    state.published = status
    await _post(context, fleet, notices, logger)


def distilling(spec: Mapping[str, Any], *fields: str) -> bool:
    """Some task's distillation sets one of ``fields``, read from the raw spec (no parse: the timers' and
    the status writer's filter, asked for every fleet)."""
    tasks = (spec.get("routing") or {}).get("tasks") or []
    return any(
        (t.get("distillation") or {}).get(field) for t in tasks if isinstance(t, Mapping) for field in fields
    )


def _trained(fleet: Mapping[str, Any]) -> tuple[bool, str, str] | None:
    """The Trained condition from the fleet's status.training (None: no task trains, or a bad spec)."""
    if not distilling(fleet.get("spec") or {}, "train"):
        return None  # most fleets: no parse on every status write
    try:
        parsed = fleet_api.ModelFleet.from_body(fleet)
    except errors.InvalidSpecError:
        return None
    return training_rule.condition(parsed, (parsed.status.training if parsed.status else None) or [])


TRAINING_EVENTS: dict[str, tuple[Literal["Normal", "Warning"], str]] = {
    "Started": ("Normal", "TrainingStarted"),
    "Succeeded": ("Normal", "TrainingSucceeded"),
    "Failed": ("Warning", "TrainingFailed"),
}


async def handle_tick_training(
    body: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """List the fleet's training Jobs, create a version that is due, write ``status.training``, post
    TrainingStarted / TrainingSucceeded / TrainingFailed, and refresh the Trained condition. Serving
    children are not touched."""
    fleet = fleet_entry(body)
    try:
        outcome = await launching.tick(context.kube, fleet, _now())
    except errors.InvalidSpecError:
        return  # the reconciler reports it
    except kubeapi.ApiError as exc:
        level = logging.DEBUG if kubeapi.terminating(exc) else logging.WARNING
        logger.log(level, "could not start or follow the training Jobs: %s", exc)
        return
    notices = [statuses.Notice(*TRAINING_EVENTS[e.kind], e.message) for e in outcome.events]
    await _post(context, fleet, notices, logger)
    if outcome.entries is None:
        return
    status = dict(fleet["status"])
    status["training"] = [e.to_wire() for e in outcome.entries]
    fleet["status"] = status
    if context.state(fleet).published is not None:  # else the reconciler writes the first status
        try:
            await refresh_fleet_status(fleet, context, views, logger)
        except kubeapi.ApiError as exc:
            logger.warning("could not refresh the Trained condition: %s", exc)


def _settled(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status without timestamps, to tell a real change from a recomputation."""
    copy = dict(status)
    copy["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]
    ]
    return copy


async def handle_recheck_access(
    body: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """Re-read the fleet's key Secrets; reconcile when a key changed (rotated, added, removed)."""
    fleet = fleet_entry(body)
    state = context.state(fleet)
    try:
        keys = await keying.resolve(context.kube, fleet)
    except kubeapi.ApiError as exc:
        logger.warning("could not re-read the API key Secrets: %s", exc)
        return
    if keys != state.keys:
        logger.info("API keys changed: re-rendering the router config")
        await handle_reconcile_fleet(body, context, views, logger)


async def handle_tick_candidates(
    body: Mapping[str, Any],
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """Read the routers' shadow scores, write ``status.candidates``, post CandidatePromoted /
    CandidateRolledBack, and reconcile the fleet when a decision or a newly trained version changes what it
    serves (also after a restart or a failed attempt: whenever the children applied predate the status)."""
    fleet = fleet_entry(body)
    aliases = context.autoscaler.host_aliases if context.autoscaler else ()
    settings = promotion.PromotionSettings(host_aliases=aliases)
    cluster = autoscaler.Cluster(context.kube, settings.field_manager)
    try:
        outcome = await promotion.collect(settings, cluster, fleet, _now())
    except errors.InvalidSpecError:
        return  # the reconciler reports it
    except kubeapi.ApiError as exc:
        logger.warning("could not update the candidates' status: %s", exc)
        return
    if outcome.candidates is not None:
        status = dict(fleet["status"])
        status["candidates"] = [c.to_wire() for c in outcome.candidates]
        fleet["status"] = status
    notices = [
        statuses.Notice(
            "Normal", "CandidatePromoted" if d.state == "Promoted" else "CandidateRolledBack", d.message()
        )
        for d in outcome.decisions
    ]
    await _post(context, fleet, notices, logger)
    if context.state(fleet).applied_decisions != desiring.decisions(fleet):
        logger.info("candidate decisions or trained versions changed: re-rendering the fleet")
        await handle_reconcile_fleet(fleet, context, views, logger)


async def handle_event_child(
    event_type: str | None,
    body: Mapping[str, Any],
    fleet: Mapping[str, Any] | None,
    context: contexts.Context,
    logger: Logger,
) -> None:
    """A watched child changed or vanished: put it back if the fleet still wants it as rendered."""
    if fleet is None or fleet["metadata"].get("deletionTimestamp"):
        return
    deleted = event_type == "DELETED"
    if deleted:  # the index may lag a fleet deletion; ask the apiserver before recreating anything
        meta = fleet["metadata"]
        live = await _get_fleet(context, meta["namespace"], meta["name"])
        if (
            live is None
            or live["metadata"].get("uid") != meta["uid"]
            or live["metadata"].get("deletionTimestamp")
        ):
            return
    state = context.state(fleet)
    if (fleet.get("spec") or {}).get("access") and not state.keys.wanted:
        # Not read by this process yet (a child event before the fleet's resume): rendering without the
        # hashes would "restore" a router config that refuses every key.
        try:
            state.keys = await keying.resolve(context.kube, fleet)
        except kubeapi.ApiError as exc:
            logger.warning("could not read the API key Secrets: %s", exc)
            return
    try:
        wanted = context.desired_child(fleet, planning.child_key(body))
    except errors.InvalidSpecError:
        return
    desired = [] if wanted is None else [wanted]
    try:
        notice = await applying.restore_child(context.kube, fleet, desired, body, deleted=deleted)
    except kubeapi.ApiError as exc:
        level = logging.DEBUG if kubeapi.terminating(exc) else logging.WARNING
        logger.log(level, "could not restore %s %s: %s", body.get("kind"), body["metadata"].get("name"), exc)
        return
    if notice is not None:
        await _post(context, fleet, [notice], logger)


async def _get_fleet(context: contexts.Context, namespace: str, name: str) -> dict[str, Any] | None:
    return await asyncio.to_thread(
        context.kube.get_custom, fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, namespace, name
    )


async def handle_event_deployment(
    event_type: str | None,
    body: Mapping[str, Any],
    fleet: Mapping[str, Any] | None,
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """A watched Deployment changed: restore it if needed, then refresh its fleet's status."""
    await handle_event_child(event_type, body, fleet, context, logger)
    await handle_event_pod(fleet, context, views, logger)


async def handle_event_pod(
    fleet: Mapping[str, Any] | None,
    context: contexts.Context,
    views: Iterable[statuses.DeploymentView],
    logger: Logger,
) -> None:
    """A fleet's pod (or Deployment) changed: refresh its status, which follows replicas and says why the
    scheduler cannot place a pod; an API failure is logged (the next event refreshes it again)."""
    if fleet is None or fleet["metadata"].get("deletionTimestamp"):
        return
    try:
        await refresh_fleet_status(fleet, context, views, logger)
    except kubeapi.ApiError as exc:
        logger.warning("could not refresh the status of fleet %s: %s", fleet["metadata"]["name"], exc)
