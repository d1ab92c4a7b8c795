"""Shadow scoring: the final-answer extractor, the judge's prompt and verdict, and the outcomes."""

from __future__ import annotations

import pytest

from flotilla.scoring import agreeing, finals, judging


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("She has 3 apples, then 5 more.\n#### 8", "8"),
        ("#### $1,440.00", "1440"),
        ("so the total is \\boxed{42} dollars", "42"),
        ("\\boxed{3/4}", "0.75"),
        ("First 12, then 7. The answer is 19.", "19"),
        ("Answer: -5", "-5"),
        ("It costs 4 dollars for 2 apples, so 10 apples cost 20", "20"),  # the last number
        ("#### 7 \n later text mentions 99", "7"),  # a marker beats the last number
        ("#### 1\n#### 2", "2"),  # the last marker wins
        ("no numbers at all", None),
        ("", None),
    ],
)
def test_final_answer(text: str, answer: str | None) -> None:
    assert finals.final_answer(text) == answer


def test_exact_final_answer_outcomes() -> None:
    assert agreeing.exact_final_answer("#### 18", "so 9 + 9 = 18") == "agreed"
    assert agreeing.exact_final_answer("#### 18", "\\boxed{18.0}") == "agreed"
    assert agreeing.exact_final_answer("#### 18", "#### 17") == "disagreed"
    assert agreeing.exact_final_answer("#### 18", "I do not know") == "disagreed"
    assert agreeing.exact_final_answer("I cannot say", "#### 17") == "unscored"


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("YES", True),
        ("Yes.", True),
        ("**No**", False),
        ("no, the candidate says 17", False),
        ("  yes - same result", True),
        ("The answers are different.", None),
        ("Not the same: no.", False),
        ("Nope", None),
        ("I am not sure", None),
        ("", None),
    ],
)
def test_judge_verdict(reply: str, verdict: bool | None) -> None:
    assert judging.verdict(reply) is verdict


def test_judge_messages_hold_the_three_texts_cut_to_size() -> None:
    long = "x" * (judging.MAX_CHARS + 100)
    system, user = judging.messages("What is 2+2?", "#### 4", long)
    assert system["role"] == "system" and "YES" in system["content"]
    assert user["role"] == "user"
    assert "What is 2+2?" in user["content"] and "#### 4" in user["content"]
    assert "x" * judging.MAX_CHARS in user["content"] and "x" * (judging.MAX_CHARS + 1) not in user["content"]


def test_verdicts_and_checks_as_outcomes() -> None:
    assert agreeing.from_verdict(True) == "agreed"
    assert agreeing.from_verdict(False) == "disagreed"
    assert agreeing.from_verdict(None) == "unscored"
    assert agreeing.from_checks(None, None) == "agreed"
    assert agreeing.from_checks(None, "json") == "disagreed"
    assert agreeing.from_checks("complete", None) == "unscored"
    assert {"agreed", "disagreed", "error"} == agreeing.SCORED
