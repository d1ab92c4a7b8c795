"""Keyword and pattern evidence."""

from __future__ import annotations

import pytest

from flotilla import errors
from flotilla.router import presets
from flotilla.router.classifying import rules


def test_keywords_match_whole_words_case_insensitively() -> None:
    task = rules.TaskRules("t", presets.words(1.0, "class", "c++", "linked list"))
    assert task.evidence("A classic novel").score == 0
    assert task.evidence("Define a CLASS").score == 1.0
    assert task.evidence("in C++, please").top == "keyword:c++"
    found = task.evidence("a linked list class")
    assert found.score == 2.0  # each keyword counted once
    assert task.evidence("class class class").score == 1.0


def test_patterns_carry_name_weight_and_cap() -> None:
    task = rules.TaskRules("t", [presets.Rule("num", r"\d+", 0.5, cap=3), presets.Rule("fence", "```", 2.0)])
    assert task.evidence("1 2").score == 1.0
    assert task.evidence("1 2 3 4 5 6").score == 1.5
    found = task.evidence("```\n1\n```")
    assert found.score == 2.5
    assert found.top == "pattern:fence"


def test_case_sensitive_rules() -> None:
    task = rules.TaskRules("t", [presets.Rule("camel", r"\b[a-z]+[A-Z]\w+", 1.0, case_sensitive=True)])
    assert task.evidence("call getValue here").score == 1.0
    assert task.evidence("Hello World").score == 0


def test_user_rules_are_keywords_and_regexes() -> None:
    task = rules.TaskRules("t", rules.user_rules(["invoice", " "], [r"\bPO-\d{4}\b"]))
    assert task.evidence("the INVOICE").top == "keyword:invoice"
    assert task.evidence("see po-1234").top == r"pattern:\bPO-\d{4}\b"
    assert task.evidence("nothing here").score == 0


def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="not a valid regex"):
        rules.TaskRules("broken", rules.user_rules([], ["(unclosed"]))
