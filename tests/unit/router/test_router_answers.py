"""Judging answers without a model: final-answer extraction and normalisation, votes, mean logprob,
verifiers, and the escalation decision."""

from __future__ import annotations

import pytest

from flotilla.api.routerconfig import Escalation
from flotilla.router import answers, escalating


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She pays $1,440.00 in total.", "1440"),
        ("First 12, then 30.\n#### 42", "42"),
        ("so \\boxed{3/4} is it", "0.75"),
        ("The answer is 7 apples. Earlier I thought 9.", "7"),
        ("Answer: $1,200", "1200"),
        ("Final answer: -3.50", "-3.5"),
        ("12 + 30 = 42", "42"),  # no marker: the last number
        ("The answer is Paris.", "paris"),
        ("I do not know.", None),
        ("", None),
    ],
)
def test_final_answer(text: str, expected: str | None) -> None:
    assert answers.final_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1,440", "1440"), ("$ 70.00", "70"), ("0.50", "0.5"), ("25%", "25"), ("4/0", "4/0"), (" Yes. ", "yes")],
)
def test_normalise(raw: str, expected: str) -> None:
    assert answers.normalise(raw) == expected


def test_majority_vote_counts_normalised_answers_and_breaks_ties_by_logprob() -> None:
    finals = ["1440", "1200", "1440", None, "1200"]
    scores = [-2.0, -0.1, -0.5, -0.01, -0.3]
    vote = answers.majority(finals, scores)
    # 1440 and 1200 both have two votes: the tie goes to the answer holding the best-scored sample (1200,
    # at -0.1), and that sample is the one served
    assert (vote.index, vote.answer, vote.agreement) == (1, "1200", pytest.approx(0.4))
    vote = answers.majority(["7", "7", "8"], [-3.0, -1.0, -0.1])
    assert (vote.index, vote.answer) == (1, "7")  # the majority wins over a more confident minority
    assert vote.agreement == pytest.approx(2 / 3)


def test_majority_without_any_answer_takes_the_best_score() -> None:
    vote = answers.majority([None, None, None], [-1.0, None, -0.5])
    assert (vote.index, vote.agreement, vote.answer) == (2, 0.0, None)


def test_select_by_logprob_and_by_majority_on_real_choice_shapes() -> None:
    def choice(text: str, *logprobs: float) -> dict[str, object]:
        content = [{"token": "x", "logprob": lp} for lp in logprobs]
        return {"message": {"content": text}, "logprobs": {"content": content}, "finish_reason": "stop"}

    choices = [choice("Answer: 5", -0.2, -0.2), choice("Answer: 6", -0.01), choice("Answer: 5.0", -1.0)]
    assert answers.select(choices, "majority").index == 0
    picked = answers.select(choices, "logprob")
    assert (picked.index, picked.agreement) == (1, pytest.approx(1 / 3))


def test_token_logprobs_of_chat_and_completions_skip_garbage() -> None:
    chat = {"logprobs": {"content": [{"logprob": -0.5}, {"logprob": None}, {"logprob": True}, "x"]}}
    assert answers.token_logprobs(chat) == [-0.5]
    legacy = {"logprobs": {"token_logprobs": [None, -1.0, -3.0, float("nan")]}}
    assert answers.token_logprobs(legacy) == [-1.0, -3.0]
    assert answers.mean_logprob(answers.token_logprobs(legacy)) == pytest.approx(-2.0)
    assert answers.token_logprobs({"logprobs": None}) == []
    assert answers.mean_logprob([]) is None


JSON_REQUEST = {"response_format": {"type": "json_object"}}


@pytest.mark.parametrize(
    ("verifiers", "text", "finish", "payload", "failed"),
    [
        (["json"], '{"a": 1}', "stop", JSON_REQUEST, None),
        (["json"], "Sure! {'a': 1}", "stop", JSON_REQUEST, "json"),
        (["json"], "plain text is fine", "stop", {}, None),  # JSON not asked for: nothing to verify
        (["final-answer"], "no idea", "stop", {}, "final-answer"),
        (["final-answer"], "It is 12.", "stop", {}, None),
        (["complete"], "It is 1", "length", {}, "complete"),
        (["non-empty", "complete"], "  ", "stop", {}, "non-empty"),
        (["complete", "json"], "{", "length", JSON_REQUEST, "complete"),  # the first failing one is named
    ],
)
def test_verifiers(verifiers, text: str, finish: str, payload: dict[str, object], failed: str | None) -> None:
    choice = {"message": {"content": text}, "finish_reason": finish}
    assert answers.failed_verifier(verifiers, choice, payload) == failed


def test_escalation_decision() -> None:
    escalation = Escalation(min_mean_logprob=-1.0, min_agreement=0.5, verifiers=["final-answer"])
    good = {"message": {"content": "Answer: 3"}}
    assert escalating.judge(escalation, -0.4, 0.8, good, {}) is None
    assert escalating.judge(escalation, -1.5, 0.8, good, {}) == "logprob"
    assert escalating.judge(escalation, None, 0.8, good, {}) is None  # no logprobs: not judged by them
    assert escalating.judge(escalation, -0.4, 0.2, good, {}) == "agreement"
    assert escalating.judge(escalation, -0.4, None, {"message": {"content": "hmm"}}, {}) == "final-answer"


def test_escalation_needs_a_criterion() -> None:
    with pytest.raises(ValueError, match="escalation needs"):
        Escalation(hold_tokens=4)
