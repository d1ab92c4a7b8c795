"""Judge one completion choice without another model: its mean token logprob, its final answer, verifiers.

Pure functions over the decoded OpenAI choice objects, shared by escalation (``escalating``: is this answer
good enough to serve?) and test-time compute (``sampling``: which of n samples to serve?). Answer extraction
is tuned for arithmetic answers ("#### 42", "\\boxed{42}", "the answer is 42", else the last number) but
works on any text: a sample whose answer cannot be extracted simply does not vote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotilla.api.routerconfig import Selection, Verifier
from flotilla.scoring import finals


def text_of(choice: Mapping[str, Any]) -> str:
    """The text of a chat (``message.content``) or completions (``text``) choice; "" when there is none."""
    message = choice.get("message")
    if isinstance(message, Mapping):
        content = message.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def token_logprobs(choice: Mapping[str, Any]) -> list[float]:
    """The sampled tokens' logprobs: chat ``logprobs.content[].logprob`` or completions
    ``logprobs.token_logprobs``; non-numbers (a null for the first token, garbage) are skipped."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, Mapping):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):
        values: list[object] = [t.get("logprob") for t in content if isinstance(t, Mapping)]
    else:
        raw = logprobs.get("token_logprobs")
        values = list(raw) if isinstance(raw, list) else []
    return [float(v) for v in values if isinstance(v, int | float) and _finite(v)]


def _finite(value: float) -> bool:
    return not isinstance(value, bool) and math.isfinite(value)


def mean_logprob(values: Sequence[float]) -> float | None:
    """The mean of ``values`` (the model's average confidence per token); None without any."""
    return sum(values) / len(values) if values else None


normalise = finals.normalise
final_answer = finals.final_answer
"""Re-exported: escalation, test-time compute and the quality bench use these names."""


def wants_json(payload: Mapping[str, Any]) -> bool:
    """Whether the request's ``response_format`` asks for JSON (``json_object`` or ``json_schema``)."""
    fmt = payload.get("response_format")
    return isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema")


def failed_verifier(
    verifiers: Sequence[Verifier], choice: Mapping[str, Any], payload: Mapping[str, Any]
) -> Verifier | None:
    """The first verifier ``choice`` fails, or None when it passes them all."""
    text = text_of(choice)
    for verifier in verifiers:
        if verifier == "json":
            if wants_json(payload) and not _is_json(text):
                return verifier
        elif verifier == "final-answer":
            if final_answer(text) is None:
                return verifier
        elif verifier == "complete":
            if choice.get("finish_reason") == "length":
                return verifier
        elif not text.strip():  # non-empty
            return verifier
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Vote:
    """The outcome of a vote: the index of the sample to serve, and the share of voters that agree with it."""

    index: int
    agreement: float
    answer: str | None


def majority(answers: Sequence[str | None], scores: Sequence[float | None]) -> Vote:
    """The most frequent answer (samples without one do not vote); ties, and the sample to serve among the
    agreeing ones, go to the highest score (mean logprob), then to the earliest. Without any answer, the
    highest score wins with agreement 0."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return Vote(best_scored(scores), 0.0, None)
    top = max(counts.values())
    leaders = {a for a, c in counts.items() if c == top}
    candidates = [i for i, a in enumerate(answers) if a in leaders]
    index = max(candidates, key=lambda i: (_score(scores[i]), -i))
    return Vote(index, top / len(answers), answers[index])


def best_scored(scores: Sequence[float | None]) -> int:
    """The index of the highest score (None counts lowest; ties go to the earliest)."""
    return max(range(len(scores)), key=lambda i: (_score(scores[i]), -i)) if scores else 0


def _score(value: float | None) -> float:
    return -math.inf if value is None else value


def select(choices: Sequence[Mapping[str, Any]], how: Selection) -> Vote:
    """The sample to serve: by ``majority`` vote on the final answer, or the highest mean ``logprob``.
    ``agreement`` is the share of samples whose final answer equals the served one's (0 without one)."""
    scores = [mean_logprob(token_logprobs(c)) for c in choices]
    finals = [final_answer(text_of(c)) for c in choices]
    if how == "majority":
        return majority(finals, scores)
    index = best_scored(scores)
    answer = finals[index]
    agreement = 0.0 if answer is None else finals.count(answer) / len(finals)
    return Vote(index, agreement, answer)
