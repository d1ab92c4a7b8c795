"""The router's Prometheus metrics, in one registry per app (tests and benches can run several apps).

Names the autoscaler reads: ``flotilla_router_in_flight{model}`` (requests being served by the model now),
``flotilla_router_queued{model}`` (requests held while the model is cold) and
``flotilla_router_cold_requests_total{model}`` (requests that found the model cold: the autoscaler turns its
increase between scrapes into demand, so a request held for less than a scrape interval, or not held at
all, still wakes the model).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flotilla.api import candidates
from flotilla.capturing.pipeline import CaptureMetrics

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_CONFIDENCE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Cold:
    """The labelled children one model's cold path touches, looked up once per model."""

    queued: Any
    requests: Any


@dataclass(frozen=True, slots=True)
class Served:
    """The labelled children for one (model, task), looked up once: ``labels()`` costs a lock and a dict."""

    in_flight: Any
    first_byte: Any
    latency: Any
    prompt_tokens: Any
    completion_tokens: Any
    dollars: Any
    saved: Any
    outcomes: dict[str, Any]  # flotilla_router_requests children by outcome, filled on first use

    def requests(self, metrics: Metrics, model: str, task: str, outcome: str) -> Any:
        """The requests counter child for ``outcome`` (created lazily: unseen outcomes stay unexported)."""
        child = self.outcomes.get(outcome)
        if child is None:
            child = self.outcomes[outcome] = metrics.requests.labels(model, task, outcome)
        return child


class ShadowMetrics:
    """flotilla_router_shadow_*: mirroring to candidate models (``router.shadowing``); the operator sums the
    counters over replicas (``flotilla.api.candidates``)."""

    def __init__(self, r: CollectorRegistry) -> None:
        labels = ["task", "candidate", "replica"]

        def counter(name: str, doc: str) -> Counter:
            return Counter(name.removesuffix("_total"), doc, labels, registry=r)

        self.mirrored = counter(candidates.MIRRORED_METRIC, "Requests mirrored to a task's candidate model.")
        self.scored = counter(candidates.SCORED_METRIC, "Mirrors scored (agreed, disagreed or errors).")
        self.agreed = counter(candidates.AGREED_METRIC, "Scored mirrors that agreed with the served answer.")
        self.errors = counter(candidates.ERRORS_METRIC, "Scored mirrors the candidate failed to answer.")
        self.unscored = counter(
            "flotilla_router_shadow_unscored_total",
            "Mirrors not scored: no final answer in the served one, no verdict from the judge.",
        )
        self.dropped = counter(
            "flotilla_router_shadow_dropped_total", "Requests not mirrored: maxConcurrent mirrors in flight."
        )
        self.seconds = Histogram(
            "flotilla_router_shadow_seconds",
            "Time to ask the candidate (and the judge) and score, after the client had its answer.",
            ["task", "candidate"],
            buckets=_LATENCY,
            registry=r,
        )


class Metrics:
    """Every metric the router exports; attributes are the prometheus-client objects."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.capture = CaptureMetrics(r)
        """flotilla_router_traces_*: distillation capture (``capturing.pipeline``)."""
        self.shadow = ShadowMetrics(r)
        """flotilla_router_shadow_*: mirroring to candidate models (``router.shadowing``)."""
        self.requests = Counter(
            "flotilla_router_requests",
            "Completed requests by serving model, task and outcome (ok, error, client_error, cancelled).",
            ["model", "task", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "flotilla_router_request_seconds",
            "Total request time as the client saw it.",
            ["model", "task"],
            buckets=_LATENCY,
            registry=r,
        )
        self.first_byte = Histogram(
            "flotilla_router_first_byte_seconds",
            "Time until the upstream's response headers arrived.",
            ["model", "task"],
            buckets=_LATENCY,
            registry=r,
        )
        self.key_cloud_spend = Counter(
            "flotilla_router_key_cloud_spend_usd",
            "USD spent on cloud fallbacks per API key and month (UTC) by this router process (replica).",
            ["key", "month", "replica"],
            registry=r,
        )
        self.in_flight = Gauge(
            "flotilla_router_in_flight", "Requests being served by the model now.", ["model"], registry=r
        )
        self.queued = Gauge(
            "flotilla_router_queued",
            "Requests held waiting for a cold model to get an endpoint.",
            ["model"],
            registry=r,
        )
        self.cold_requests = Counter(
            "flotilla_router_cold_requests",
            "Requests that found the model with no ready pod: held, then served or spilled.",
            ["model"],
            registry=r,
        )
        self.fallbacks = Counter(
            "flotilla_router_fallbacks",
            "Times a request left a model for the next in the chain, by reason.",
            ["model", "task", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            "flotilla_router_failovers",
            "Times a request left a model for the next in the chain, by phase: prestream (nothing relayed "
            "yet, as flotilla_router_fallbacks) or midstream (a stream that broke was continued).",
            ["model", "task", "phase"],
            registry=r,
        )
        self.classification = Histogram(
            "flotilla_router_classification_seconds",
            "Time spent choosing the task.",
            ["reason"],
            buckets=_FAST,
            registry=r,
        )
        self.classified_requests = Counter(
            "flotilla_router_classified_requests",
            "Requests whose task the classifier chose, by task and by what decided (classifier, keyword, "
            "pattern, embedding, default).",
            ["task", "reason"],
            registry=r,
        )
        self.confidence = Histogram(
            "flotilla_router_classifier_confidence",
            "Calibrated probability of the task the classifier chose: low values mark likely misroutes.",
            ["task"],
            buckets=_CONFIDENCE,
            registry=r,
        )
        self.tokens = Counter(
            "flotilla_router_tokens",
            "Tokens by serving model, task and kind (prompt, completion).",
            ["model", "task", "kind"],
            registry=r,
        )
        self.dollars = Counter(
            "flotilla_router_dollars",
            "US dollars spent, by serving model and task.",
            ["model", "task"],
            registry=r,
        )
        self.saved = Counter(
            "flotilla_router_dollars_saved",
            "US dollars saved versus the task's first cloud fallback.",
            ["model", "task"],
            registry=r,
        )
        self.breaker = Gauge(
            "flotilla_router_circuit_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.",
            ["model", "upstream"],
            registry=r,
        )
        self.reloads = Counter(
            "flotilla_router_config_reloads",
            "Config reload attempts by result (ok, invalid).",
            ["result"],
            registry=r,
        )
        self.classifier_info = Gauge(
            "flotilla_router_classifier_info",
            "The classifier head in use (value 1): source packaged or custom, its version and sha256.",
            ["source", "version", "sha256"],
            registry=r,
        )
        self.classifier_load_failures = Counter(
            "flotilla_router_classifier_load_failures",
            "Custom classifiers that could not be fetched or loaded (the router kept the one it had, or the "
            "packaged one at start).",
            registry=r,
        )

        self.escalation_checks = Counter(
            "flotilla_router_escalation_checks",
            "Fleet-model answers checked for escalation, by task (the escalation rate's denominator).",
            ["task"],
            registry=r,
        )
        self.escalations = Counter(
            "flotilla_router_escalations",
            "Fleet-model answers escalated to the next in the chain, by task and reason (logprob, agreement, "
            "or the verifier that failed).",
            ["task", "reason"],
            registry=r,
        )
        self.samples = Counter(
            "flotilla_router_samples",
            "Answers sampled by test-time compute, by fleet model and task.",
            ["model", "task"],
            registry=r,
        )
        self.cascade_dollars = Counter(
            "flotilla_router_cascade_dollars",
            "US dollars spent on non-streamed requests of tasks with escalation or test-time compute: every "
            "sample and both answers of an escalated request.",
            ["task"],
            registry=r,
        )
        self.cascade_saved = Counter(
            "flotilla_router_cascade_dollars_saved",
            "US dollars saved by those requests that the fleet model answered: what the task's first cloud "
            "fallback would have cost for the served answer, minus everything spent on the request.",
            ["task"],
            registry=r,
        )
        self.escalation_overhead = Counter(
            "flotilla_router_escalation_overhead_dollars",
            "US dollars spent on fleet-model answers that were escalated (paid for, not served).",
            ["task"],
            registry=r,
        )

        self._served: dict[tuple[str, str], Served] = {}
        self._classified: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._breakers: dict[tuple[str, str], Any] = {}
        self._cold: dict[str, Cold] = {}

    def classifier_in_use(self, source: str, version: str, sha256: str) -> None:
        """Point ``flotilla_router_classifier_info`` at the classifier now serving (one series at a time)."""
        self.classifier_info.clear()
        self.classifier_info.labels(source, version, sha256).set(1)

    def classified(self, task: str, how: str, score: float, seconds: float) -> None:
        """Record one classifier decision: its time, its task and reason, and its confidence."""
        children = self._classified.get((task, how))
        if children is None:
            children = self._classified[task, how] = (
                self.classification.labels(how),
                self.classified_requests.labels(task, how),
                self.confidence.labels(task),
            )
        children[0].observe(seconds)
        children[1].inc()
        children[2].observe(score)

    def cold(self, model: str) -> Cold:
        """The cached queued-gauge and cold-requests children of ``model``."""
        children = self._cold.get(model)
        if children is None:
            children = self._cold[model] = Cold(
                queued=self.queued.labels(model), requests=self.cold_requests.labels(model)
            )
        return children

    def breaker_state(self, model: str, upstream: str) -> Any:
        """The cached circuit-state gauge child for one upstream of ``model``."""
        key = (model, upstream)
        child = self._breakers.get(key)
        if child is None:
            child = self._breakers[key] = self.breaker.labels(model, upstream)
        return child

    def forget_breaker(self, model: str, upstream: str) -> None:
        """Remove the circuit-state series of an upstream that left (a gone pod must not linger)."""
        self._breakers.pop((model, upstream), None)
        with contextlib.suppress(KeyError):
            self.breaker.remove(model, upstream)

    def served(self, model: str, task: str) -> Served:
        """Cached children for ``model`` serving ``task`` (the set of pairs is small and fixed by config)."""
        key = (model, task)
        children = self._served.get(key)
        if children is None:
            children = self._served[key] = Served(
                in_flight=self.in_flight.labels(model),
                first_byte=self.first_byte.labels(model, task),
                latency=self.latency.labels(model, task),
                prompt_tokens=self.tokens.labels(model, task, "prompt"),
                completion_tokens=self.tokens.labels(model, task, "completion"),
                dollars=self.dollars.labels(model, task),
                saved=self.saved.labels(model, task),
                outcomes={},
            )
        return children
