"""Rule evidence: a task's keywords and regular expressions compiled once, scored against a prompt.

A prompt is prepared once per turn (``prepare``: lower-cased text and its set of words) and shared by every
task. Single-word keywords are then set lookups and phrases substring tests confirmed by a regex, so keyword
cost barely depends on how many keywords a task has; pattern rules run only when one of their needles
occurs. A task's evidence is the sum of its matched rules' weights, each keyword counted once and each
pattern at most ``cap`` times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flotilla import errors
from flotilla.router import presets

USER_KEYWORD_WEIGHT = 2.0
"""Evidence of one of the task's own ``match.keywords``: a fleet's own words are deliberate, so a single one
(with no competing evidence) clears the default task's head start."""

USER_PATTERN_WEIGHT = 2.5
"""Evidence of one of the task's own ``match.patterns`` (matched case-insensitively, like keywords)."""

STRONG_KEYWORD_WEIGHT = 1.5
"""Keywords at least this heavy (language names, "equation", a fleet's own keywords) count in full."""

WEAK_KEYWORD_CAP = 1.2
"""Lighter keywords (topic words such as "twice", "list", "story") add up to at most this much per task: each
is a hint, and a long prompt collects hints for every task by chance. Below the default task's head start
(``classifiers.DEFAULT_PRIOR``), so hints alone never take a prompt away from the default."""

_WORD = re.compile(r"\w+")
_ESCAPE = re.compile(r"\\.")


@dataclass(frozen=True, slots=True)
class Text:
    """One turn, prepared once for all tasks."""

    original: str
    lower: str
    words: frozenset[str]


def prepare(text: str) -> Text:
    lower = text.lower()
    return Text(text, lower, frozenset(_WORD.findall(lower)))


@dataclass(frozen=True, slots=True)
class Evidence:
    """How strongly a text points at one task, and the rule that contributed most (for the reason)."""

    score: float
    top: str


@dataclass(frozen=True, slots=True)
class _Pattern:
    reason: str
    regex: re.Pattern[str]
    weight: float
    cap: int
    on_original: bool
    needles: tuple[str, ...]


class TaskRules:
    """The compiled rules of one task."""

    __slots__ = ("_patterns", "_phrases", "_words")

    def __init__(self, task: str, rules: Iterable[presets.Rule]) -> None:
        words: dict[str, float] = {}
        phrases: dict[str, tuple[re.Pattern[str], float]] = {}
        patterns: list[_Pattern] = []
        for rule in rules:
            if rule.keyword:
                term = rule.name.lower().strip()
                if _WORD.fullmatch(term):
                    words[term] = max(rule.weight, words.get(term, 0.0))
                elif term:
                    old = phrases.get(term)
                    phrases[term] = (
                        re.compile(presets.word_regex(term)),
                        max(rule.weight, old[1] if old else 0.0),
                    )
                continue
            # Case-insensitive rules run on the lower-cased text, so a lower-case regex needs no IGNORECASE
            # (which makes Python's re several times slower); one with capitals (a fleet's own) keeps it.
            folded = rule.case_sensitive or not any(c.isupper() for c in _ESCAPE.sub("", rule.regex))
            try:
                compiled = re.compile(rule.regex, re.MULTILINE if folded else re.IGNORECASE | re.MULTILINE)
            except re.error as exc:
                raise errors.ConfigError(
                    f"task {task!r}: pattern {rule.regex!r} is not a valid regex: {exc}"
                ) from exc
            needles = tuple(n.lower() for n in rule.needles)
            patterns.append(
                _Pattern(
                    f"pattern:{rule.name}", compiled, rule.weight, rule.cap, rule.case_sensitive, needles
                )
            )
        self._words = words
        self._phrases = tuple((term, regex, weight) for term, (regex, weight) in phrases.items())
        self._patterns = tuple(patterns)

    def evidence(self, text: Text) -> Evidence:
        """Sum of matched rule weights; ``top`` names the heaviest rule that matched."""
        score = 0.0
        weak = 0.0
        top = ""
        top_weight = 0.0
        for term in text.words.intersection(self._words):
            weight = self._words[term]
            if weight >= STRONG_KEYWORD_WEIGHT:
                score += weight
            else:
                weak += weight
            if weight > top_weight or (weight == top_weight and f"keyword:{term}" < top):
                top, top_weight = f"keyword:{term}", weight
        for term, regex, weight in self._phrases:
            if term in text.lower and regex.search(text.lower):
                if weight >= STRONG_KEYWORD_WEIGHT:
                    score += weight
                else:
                    weak += weight
                if weight > top_weight:
                    top, top_weight = f"keyword:{term}", weight
        score += min(weak, WEAK_KEYWORD_CAP)
        for pattern in self._patterns:
            if pattern.needles and not any(n in text.lower for n in pattern.needles):
                continue
            subject = text.original if pattern.on_original else text.lower
            if pattern.cap == 1:
                hits = 1 if pattern.regex.search(subject) else 0
            else:
                hits = 0
                for _ in pattern.regex.finditer(subject):
                    hits += 1
                    if hits >= pattern.cap:
                        break
            if hits:
                score += pattern.weight * hits
                if pattern.weight * hits > top_weight:
                    top, top_weight = pattern.reason, pattern.weight * hits
        return Evidence(score, top)


def reason_of(rule: presets.Rule) -> str:
    """The ``reason`` a classification names when ``rule`` is the heaviest that matched."""
    return f"keyword:{rule.name.lower().strip()}" if rule.keyword else f"pattern:{rule.name}"


def user_rules(keywords: Iterable[str], patterns: Iterable[str]) -> list[presets.Rule]:
    """A task's own ``match`` keywords and patterns as weighted rules."""
    rules = [
        presets.Rule(k, presets.word_regex(k), USER_KEYWORD_WEIGHT, keyword=True)
        for k in keywords
        if k.strip()
    ]
    rules += [presets.Rule(p, p, USER_PATTERN_WEIGHT) for p in patterns]
    return rules
