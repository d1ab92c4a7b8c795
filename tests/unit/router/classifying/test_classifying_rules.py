"""Keyword and pattern evidence."""

from __future__ import annotations

import re

import pytest

from flotilla import errors
from flotilla.router import presets
from flotilla.router.classifying import rules


def evidence(task: rules.TaskRules, text: str) -> rules.Evidence:
    return task.evidence(rules.prepare(text))


def test_keywords_match_whole_words_case_insensitively() -> None:
    task = rules.TaskRules("t", presets.words(1.5, "class|c++|linked list|node.js"))
    assert evidence(task, "A classic novel").score == 0
    assert evidence(task, "Define a CLASS").score == 1.5
    assert evidence(task, "in C++, please").top == "keyword:c++"
    assert evidence(task, "in c++11").score == 0  # not a whole word
    assert evidence(task, "a Linked  List").score == 0
    assert evidence(task, "a linked list class").score == 3.0  # each keyword counted once
    assert evidence(task, "class class class").score == 1.5
    assert evidence(task, "runs on Node.js").top == "keyword:node.js"


def test_weak_keywords_are_capped() -> None:
    task = rules.TaskRules("t", presets.words(0.8, "twice|half|total|circle"))
    assert evidence(task, "twice").score == 0.8
    assert evidence(task, "twice half total circle").score == rules.WEAK_KEYWORD_CAP
    strong = rules.TaskRules("t", presets.words(2.0, "python|rust|java"))
    assert evidence(strong, "python rust java").score == 6.0


def test_patterns_carry_name_weight_and_cap() -> None:
    task = rules.TaskRules("t", [presets.Rule("num", r"\d+", 0.5, cap=3), presets.Rule("fence", "```", 2.0)])
    assert evidence(task, "1 2").score == 1.0
    assert evidence(task, "1 2 3 4 5 6").score == 1.5
    found = evidence(task, "```\n1\n```")
    assert found.score == 2.5
    assert found.top == "pattern:fence"


def test_needles_gate_patterns() -> None:
    gated = rules.TaskRules("t", [presets.Rule("x", r"\bfoo\b", 1.0, needles=("bar",))])
    assert evidence(gated, "foo").score == 0
    assert evidence(gated, "foo BAR").score == 1.0


def test_case_sensitive_rules() -> None:
    task = rules.TaskRules("t", [presets.Rule("camel", r"\b[a-z]+[A-Z]\w+", 1.0, case_sensitive=True)])
    assert evidence(task, "call getValue here").score == 1.0
    assert evidence(task, "Hello World").score == 0


def test_user_rules_are_case_insensitive_keywords_and_regexes() -> None:
    task = rules.TaskRules("t", rules.user_rules(["Invoice", " "], [r"\bPO-\d{4}\b"]))
    assert evidence(task, "the INVOICE").top == "keyword:invoice"
    assert evidence(task, "see po-1234").top == r"pattern:\bPO-\d{4}\b"
    assert evidence(task, "nothing here").score == 0


def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="not a valid regex"):
        rules.TaskRules("broken", rules.user_rules([], ["(unclosed"]))


def test_preset_regexes_are_lower_case_unless_case_sensitive() -> None:
    """Case-insensitive preset rules run on lower-cased text without IGNORECASE: capitals never match."""
    for preset in presets.PRESETS.values():
        for rule in preset.rules:
            re.compile(rule.regex)
            if not rule.case_sensitive:
                unescaped = re.sub(r"\\.", "", rule.regex)
                assert unescaped == unescaped.lower(), (preset.name, rule.name)
            assert all(n == n.lower() for n in rule.needles), (preset.name, rule.name)
