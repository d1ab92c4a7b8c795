"""Every kopf handler of the operator, registered in one place on one explicit registry.

Each handler is a short stub that unpacks kopf's kwargs and calls a ``handle_<verb>_<object>`` function in
:mod:`flotilla.controller.handling`. Three indexes, kept current by kopf's watch streams, feed them: fleets
by (namespace, name), each fleet's Deployments summarised for status, and each fleet's pods the scheduler
cannot place (with its reason) — which is how status follows the cluster by watching rather than polling.

No handler is a deletion handler, so kopf never adds a finalizer: deleting a fleet is left to the
garbage collector through the owner references on every child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from flotilla import autoscaler
from flotilla.accounting import collecting
from flotilla.api import fleet as fleet_api
from flotilla.controller import contexts, handling, metrics
from flotilla.reconcile import planning, statuses

registry = kopf.OperatorRegistry()
MANAGED = {planning.MANAGED_BY: planning.MANAGER}
FLEETS = (fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL)

Logger = logging.Logger | logging.LoggerAdapter[Any]
FleetIndex = Mapping[tuple[str, str], Iterable[dict[str, Any]]]
DeploymentIndex = Mapping[tuple[str, str], Iterable[statuses.DeploymentView]]


def _context(memo: Any) -> contexts.Context:
    context: contexts.Context = memo["flotilla"]
    return context


def _fleet(
    kwargs: Mapping[str, Any], namespace: str | None, labels: Mapping[str, str]
) -> dict[str, Any] | None:
    """The fleet a child belongs to, by its fleet label, from the fleets index (kopf passes indexes as
    kwargs named after their handlers)."""
    index: FleetIndex = kwargs["fleet_index"]
    name = labels.get(planning.FLEET_LABEL)
    return next(iter(index.get((namespace or "", name or ""), [])), None)


def _deployments(kwargs: Mapping[str, Any], memo: Any) -> DeploymentIndex:
    """The Deployments index; also hands the (live) pods index to the context, for status."""
    _context(memo).pods = kwargs["pod_index"]
    index: DeploymentIndex = kwargs["deployment_index"]
    return index


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account or $KUBECONFIG, through the official client (as ``Kube`` does)."""
    return kopf.login_via_client(**kwargs)


@kopf.on.startup(registry=registry)
async def startup(memo: Any, **_: Any) -> None:
    """Size the thread pool the synchronous API calls run in."""
    workers = _context(memo).config.workers
    asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(workers))


@kopf.on.startup(registry=registry)
async def start_autoscaler(memo: Any, logger: Logger, **_: Any) -> None:
    """Start the built-in autoscaler as one task for the whole process (it lists the fleets itself, so it
    needs no handler per fleet); off with ``--no-autoscaler``."""
    context = _context(memo)
    if context.autoscaler is None:
        logger.info("built-in autoscaler off (--no-autoscaler)")
        return
    settings = context.autoscaler
    cluster = autoscaler.Cluster(context.kube, settings.field_manager)
    memo.autoscaler_stop = asyncio.Event()
    memo.autoscaler_task = asyncio.create_task(autoscaler.run(settings, cluster, stop=memo.autoscaler_stop))
    logger.info("built-in autoscaler started (every %gs)", settings.interval)


@kopf.on.startup(registry=registry)
async def start_spend_collector(memo: Any, logger: Logger, **_: Any) -> None:
    """Start the collector of cloud spend per API key (fleets with spec.access), one task per process."""
    context = _context(memo)
    aliases = context.autoscaler.host_aliases if context.autoscaler else ()
    settings = collecting.load(namespaces=context.config.namespaces, host_aliases=aliases)
    cluster = autoscaler.Cluster(context.kube, settings.field_manager)
    memo.spend_stop = asyncio.Event()
    memo.spend_task = asyncio.create_task(collecting.run(settings, cluster, stop=memo.spend_stop))
    logger.info("spend collector started (every %gs)", settings.interval)


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: Any, **_: Any) -> None:
    """Stop the autoscaler and the spend collector (their current ticks finish), then close the API
    connection pool."""
    for name in ("autoscaler", "spend"):
        task: asyncio.Task[None] | None = getattr(memo, f"{name}_task", None)
        if task is not None:
            getattr(memo, f"{name}_stop").set()
            await task
    _context(memo).kube.close()


@kopf.index(*FLEETS, registry=registry)
def fleet_index(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Fleets by (namespace, name), so child events find their fleet without an API call."""
    return {(namespace or "", name): handling.fleet_entry(body)}


@kopf.index("apps", "v1", "deployments", labels=MANAGED, registry=registry)
def deployment_index(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[tuple[str, str], statuses.DeploymentView]:
    """Each fleet's Deployments, summarised for status."""
    fleet = labels.get(planning.FLEET_LABEL)
    return {(namespace or "", fleet): statuses.DeploymentView.from_body(body)} if fleet else {}


@kopf.index("v1", "pods", labels=MANAGED, registry=registry)
def pod_index(
    *, namespace: str | None, labels: Mapping[str, str], status: Mapping[str, Any], **_: Any
) -> dict[tuple[str, str], statuses.PodTrouble]:
    """Each fleet's pods that the scheduler cannot place or that cannot start, with why."""
    fleet = labels.get(planning.FLEET_LABEL)
    message = statuses.pod_trouble(status)
    if not fleet or message is None:
        return {}
    component = labels.get(planning.COMPONENT_LABEL, "")
    return {
        (namespace or "", fleet): statuses.PodTrouble(
            component, labels.get(planning.MODEL_LABEL) or labels.get(planning.PACK_LABEL), message
        )
    }


@kopf.on.resume(*FLEETS, registry=registry)
@kopf.on.create(*FLEETS, registry=registry)
@kopf.on.update(*FLEETS, registry=registry)
async def reconcile_fleet(
    *, body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: Logger, **kwargs: Any
) -> None:
    """A fleet appeared, changed, or the operator (re)started: converge its children."""
    views = list(_deployments(kwargs, memo).get((namespace or "", name), []))
    outcome = "failed"
    try:
        await handling.handle_reconcile_fleet(body, _context(memo), views, logger)
        outcome = "applied"
    except kopf.PermanentError:
        outcome = "rejected"
        raise
    except kopf.TemporaryError:
        outcome = "retried"
        raise
    finally:
        metrics.current().reconciled(namespace or "", name, outcome)


ACCESS_RECHECK_SECONDS = 30.0
"""How often the Secrets of a fleet's API keys are re-read (the operator may not watch Secrets)."""


def _has_access(spec: Mapping[str, Any], **_: Any) -> bool:
    return bool(spec.get("access"))


@kopf.timer(*FLEETS, interval=ACCESS_RECHECK_SECONDS, when=_has_access, registry=registry)
async def recheck_access(
    *, body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: Logger, **kwargs: Any
) -> None:
    """A rotated or newly created key Secret reaches the router config within one interval."""
    views = list(_deployments(kwargs, memo).get((namespace or "", name), []))
    await handling.handle_recheck_access(body, _context(memo), views, logger)


PROMOTION_SECONDS = 10.0
"""How often the routers' shadow counters of a fleet with candidates are read and the rule applied."""


def _reads_routers(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """A task names a candidate, trains them, or captures traces (status.traces), or the status still lists
    a candidate (cleared once the spec no longer names it)."""
    return handling.distilling(spec, "shadow", "train", "capture") or bool(status.get("candidates"))


@kopf.timer(*FLEETS, interval=PROMOTION_SECONDS, when=_reads_routers, registry=registry)
async def promote_candidates(
    *, body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: Logger, **kwargs: Any
) -> None:
    """Sum the routers' scores of the fleet's candidate models; promote or roll back by the spec's rule."""
    views = list(_deployments(kwargs, memo).get((namespace or "", name), []))
    await handling.handle_tick_candidates(body, _context(memo), views, logger)


TRAINING_SECONDS = 10.0
"""How often a fleet with training tasks is checked: its Jobs listed, a due version started."""


def _trains(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """A task has distillation.train, or the status still lists a training entry (cleared without one)."""
    return handling.distilling(spec, "train") or bool(status.get("training"))


@kopf.timer(*FLEETS, interval=TRAINING_SECONDS, when=_trains, registry=registry)
async def train_tasks(
    *, body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: Logger, **kwargs: Any
) -> None:
    """Start the next adapter version of a task once enough traces were captured; follow its Job."""
    views = list(_deployments(kwargs, memo).get((namespace or "", name), []))
    await handling.handle_tick_training(body, _context(memo), views, logger)


@kopf.on.event(*FLEETS, registry=registry)
def forget_fleet(*, type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Drop a deleted fleet's in-memory state (its children are garbage-collected)."""
    if type == "DELETED":
        _context(memo).forget(namespace or "", name)
        metrics.current().forget(namespace or "", name)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED, registry=registry)
async def deployment_event(
    *, type: str, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], memo: Any,
    logger: Logger, **kwargs: Any,
) -> None:  # fmt: skip
    """A Deployment of a fleet changed or vanished: restore it and refresh the fleet's status."""
    fleet = _fleet(kwargs, namespace, labels)
    views = list(_deployments(kwargs, memo).get((namespace or "", labels.get(planning.FLEET_LABEL, "")), []))
    await handling.handle_event_deployment(type, body, fleet, _context(memo), views, logger)


def _pod_news(
    *, status: Mapping[str, Any], namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any
) -> bool:
    """Only a pod in trouble (unplaceable, or not starting), or one of a fleet whose status names such a
    pod, is worth a status refresh: the other pod events (hundreds in a burst of new fleets) are skipped."""
    if statuses.pod_trouble(status) is not None:
        return True
    state = _context(memo).fleets.get((namespace or "", labels.get(planning.FLEET_LABEL, "")))
    return state is not None and statuses.reports_pod_trouble(state.published)


@kopf.on.event("v1", "pods", labels=MANAGED, when=_pod_news, registry=registry)
async def pod_event(
    *, namespace: str | None, labels: Mapping[str, str], memo: Any, logger: Logger,
    **kwargs: Any,
) -> None:  # fmt: skip
    """A fleet's pod changed (scheduled or not): refresh the fleet's status (pods are read, never written)."""
    fleet = _fleet(kwargs, namespace, labels)
    views = list(_deployments(kwargs, memo).get((namespace or "", labels.get(planning.FLEET_LABEL, "")), []))
    await handling.handle_event_pod(fleet, _context(memo), views, logger)


@kopf.on.event("v1", "services", labels=MANAGED, registry=registry)
@kopf.on.event("v1", "configmaps", labels=MANAGED, registry=registry)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED, registry=registry)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED, registry=registry)
@kopf.on.event("v1", "serviceaccounts", labels=MANAGED, registry=registry)
@kopf.on.event("rbac.authorization.k8s.io", "v1", "roles", labels=MANAGED, registry=registry)
@kopf.on.event("rbac.authorization.k8s.io", "v1", "rolebindings", labels=MANAGED, registry=registry)
async def child_event(
    *, type: str, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], memo: Any,
    logger: Logger, **kwargs: Any,
) -> None:  # fmt: skip
    """Any other child changed or vanished: put it back if the fleet still wants it."""
    fleet = _fleet(kwargs, namespace, labels)
    await handling.handle_event_child(type, body, fleet, _context(memo), logger)
