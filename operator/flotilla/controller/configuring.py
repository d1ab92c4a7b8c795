"""Operator configuration: the ``flotilla operator`` flags as a frozen dataclass, and the kopf settings
they imply. ``configure`` is pure (it only mutates the settings object it is given), so it is unit-tested.
"""

from __future__ import annotations

import dataclasses
import logging

import kopf

from flotilla.reconcile import kube, planning

ANNOTATION_PREFIX = "operator.flotilla.dev"
"""Prefix of kopf's bookkeeping annotations on fleets (progress and last-handled spec)."""


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """How one operator process runs."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty means all namespaces (cluster-wide watches)."""
    liveness: str | None = None
    """kopf liveness endpoint URL, e.g. ``http://0.0.0.0:8080/healthz``; None serves none."""
    metrics: tuple[str, int] | None = None
    """(host, port) to serve Prometheus metrics on at /metrics; None serves none."""
    log_level: str = "INFO"
    """Root log level (DEBUG, INFO, WARNING, ERROR)."""
    peering: str | None = None
    """kopf peering object name for an active/standby pair; None runs standalone (the default)."""
    workers: int = 16
    """Threads for API calls (and HTTP connections in the pool)."""
    server_timeout: int = 300
    """Seconds the apiserver keeps a watch open before kopf re-lists; bounds how stale a missed event is."""
    autoscaler: bool = True
    """Run the built-in autoscaler in this process (``--no-autoscaler`` turns it off)."""

    @property
    def clusterwide(self) -> bool:
        """True when no namespace was named."""
        return not self.namespaces


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> kopf.OperatorSettings:
    """Apply Flotilla's choices to kopf's settings and return them.

    - Standalone by default: one operator replica (the Deployment uses ``strategy: Recreate``), so no
      peering objects and no RBAC for them; ``--peering NAME`` turns kopf peering on.
    - No finalizer is ever added: children are garbage-collected through owner references.
    - kopf's progress lives in annotations only, so the status subresource holds only Flotilla's status.
    - kopf posts Events only for warnings and errors; Flotilla posts its own for transitions.
    - Scanning is off: the operator needs no RBAC on CRDs or namespaces (the CRD must exist at start).
    - Child watch streams are filtered server-side by the managed-by label, so the operator never caches
      Deployments it does not manage.
    - Every API call has a connect and a request timeout (``kube.CONNECT_TIMEOUT``, ``kube.READ_TIMEOUT``),
      so a hung connection cannot pin a worker.
    """
    settings.peering.standalone = config.peering is None
    if config.peering is not None:
        settings.peering.name = config.peering
        settings.peering.clusterwide = config.clusterwide
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "flotilla"
    settings.scanning.disabled = True
    settings.watching.server_timeout = config.server_timeout
    settings.watching.client_timeout = config.server_timeout + 30
    settings.watching.connect_timeout = kube.CONNECT_TIMEOUT
    # kopf's own calls (patches, Events): bounded like Flotilla's (``kube.READ_TIMEOUT``), not kopf's 300 s
    settings.networking.connect_timeout = kube.CONNECT_TIMEOUT
    settings.networking.request_timeout = kube.READ_TIMEOUT
    settings.execution.max_workers = config.workers
    managed = f"{planning.MANAGED_BY}={planning.MANAGER}"
    for kind in kube.CHILD_KINDS:
        settings.watching.label_selectors[kind.api_version, kind.plural] = managed
    return settings


class QuietSuccesses(logging.Filter):
    """Drops kopf's "Handler '…' succeeded." and "Indexer '…' succeeded." lines below DEBUG.

    kopf logs one per handler call, and the child watchers run on every child event, so at a hundred
    fleets these lines drown the ones that matter (what was applied, restored, degraded).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(("Handler '", "Indexer '")) and message.endswith("' succeeded."))


def configure_logging(config: OperatorConfig) -> None:
    """kopf's log format at the configured level, without the per-call success lines unless DEBUG."""
    kopf.configure(debug=config.log_level == "DEBUG", quiet=config.log_level in ("WARNING", "ERROR"))
    root = logging.getLogger()
    root.setLevel(config.log_level)
    if config.log_level != "DEBUG":
        for handler in root.handlers:
            handler.addFilter(QuietSuccesses())
        # One access line per kubelet probe of the liveness endpoint (every few seconds) drowns the log.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
