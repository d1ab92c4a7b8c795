"""A sampled log of classifier decisions, so a team can see misroutes and label its own training set.

Opt-in per fleet (``routing.classifier.logSample``): each sampled request logs one JSON line on the logger
``flotilla.router.decisions`` with the sha256 of the last user turn, the task, its probability, the reason
and every task's probability; the prompt text itself only with ``logPrompts: true``. The hash lets a team
join a decision with its own request logs without the router storing prompts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flotilla.api.routerconfig import ClassifierSettings
from flotilla.router.classifying import texts

log = logging.getLogger("flotilla.router.decisions")


def record(
    settings: ClassifierSettings,
    task: str,
    score: float,
    reason: str,
    probabilities: Sequence[tuple[str, float]],
    messages: Sequence[Mapping[str, Any]],
    draw: Callable[[], float] = random.random,
) -> bool:
    """Log one decision if it is sampled; returns whether it was."""
    if settings.log_sample <= 0 or draw() >= settings.log_sample:
        return False
    turns = texts.user_turns(messages, 0)
    prompt = turns[0] if turns else ""
    entry: dict[str, Any] = {
        "event": "classified",
        "prompt_sha256": hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest(),
        "task": task,
        "score": round(score, 4),
        "reason": reason,
        "probabilities": dict(probabilities),
    }
    if settings.log_prompts:
        entry["prompt"] = prompt
    log.info("%s", json.dumps(entry, ensure_ascii=False))
    return True
