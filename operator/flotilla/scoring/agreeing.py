"""Turn a served answer and a candidate's answer into one outcome of shadow evaluation.

``agreed`` and ``disagreed`` are scored (they count towards the candidate's agreement); ``unscored`` means
the pair says nothing about the candidate (the served answer has no final answer to compare, the judge gave
no verdict) and is left out. A candidate that failed to answer is ``error``: scored, and not agreement.
"""

from __future__ import annotations

from typing import Literal

from flotilla.scoring import finals

Outcome = Literal["agreed", "disagreed", "unscored", "error"]
SCORED: frozenset[Outcome] = frozenset({"agreed", "disagreed", "error"})


def exact_final_answer(served: str, candidate: str) -> Outcome:
    """Agreed when both final answers (``finals.final_answer``) are equal; unscored when the served answer
    has none; a candidate without one disagrees."""
    reference = finals.final_answer(served)
    if reference is None:
        return "unscored"
    return "agreed" if finals.final_answer(candidate) == reference else "disagreed"


def from_verdict(verdict: bool | None) -> Outcome:
    """A judge's yes / no / unreadable reply."""
    if verdict is None:
        return "unscored"
    return "agreed" if verdict else "disagreed"


def from_checks(served_failed: str | None, candidate_failed: str | None) -> Outcome:
    """The request's own checks (verifiers): agreed when the candidate passes every check; unscored when the
    served answer itself fails one (the checks then say nothing about the candidate)."""
    if served_failed is not None:
        return "unscored"
    return "agreed" if candidate_failed is None else "disagreed"
