"""Choose the task and the ordered chain of upstreams for one request.

Precedence: the ``x-flotilla-task`` header, then ``model`` naming a fleet model or provider, then a task
name, then ``auto`` (or no model) → the classifier. The route reason names which rule decided.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotilla.router.replies import RequestError
from flotilla.router.snapshots import Snapshot

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Route:
    task: str
    chain: tuple[str, ...]
    reason: str
    classify_seconds: float = 0.0
    score: float = 1.0
    """The classifier's probability of ``task`` (1.0 when a header, model or alias decided)."""
    probabilities: tuple[tuple[str, float], ...] = ()


def choose(
    snapshot: Snapshot, model: str | None, header: str | None, messages: Sequence[Mapping[str, Any]]
) -> Route:
    """The route for a request; ``RequestError`` (400/404) for an unknown task or model."""
    if header and header != AUTO:
        if header not in snapshot.chains:
            raise RequestError(
                400,
                f"unknown task {header!r} in x-flotilla-task; tasks: {', '.join(snapshot.chains)}",
                "unknown_task",
                "x-flotilla-task",
            )
        return Route(header, snapshot.chains[header], "header")
    if model and model != AUTO and not header:
        if model in snapshot.targets:
            task = snapshot.model_task.get(model, snapshot.config.default_task)
            rest = tuple(
                n for n in snapshot.chains.get(task, ()) if snapshot.targets[n].is_cloud and n != model
            )
            return Route(task, (model, *rest), "model")
        if model in snapshot.chains:
            return Route(model, snapshot.chains[model], "alias")
        raise RequestError(
            404,
            f"The model {model!r} does not exist: use a fleet model, a task ({', '.join(snapshot.chains)}) "
            f"or 'auto'",
            "model_not_found",
            "model",
        )
    started = time.perf_counter()
    result = snapshot.classifier.classify(messages)
    elapsed = time.perf_counter() - started
    task = result.task if result.task in snapshot.chains else snapshot.config.default_task
    return Route(
        task, snapshot.chains[task], result.reason or "default", elapsed, result.score, result.probabilities
    )
