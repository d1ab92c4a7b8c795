"""The stand-in's teacher mode: known prompts answered as a cloud teacher would (no banner, ``#### <answer>``
first), unknown prompts still marked as the stand-in's, so they never pass for a teacher's answer."""

from __future__ import annotations

from starlette.testclient import TestClient

from flotilla import standin

ROWS = [{"prompt": "What is 6 times 7?", "answer": "42", "solution": "6*7=<<6*7=42>>42"}]


def _answer(client: TestClient, prompt: str, max_tokens: int = 64) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def test_teacher_answers_known_prompts_without_the_banner() -> None:
    client = TestClient(standin.build_app(key=standin.AnswerKey(ROWS), teacher=True))
    assert _answer(client, "  What is 6 times   7? ") == "#### 42 6*7=42"
    assert _answer(client, "What is 6 times 7?", max_tokens=2) == "#### 42"
    assert _answer(client, "Who are you?").startswith(standin.BANNER)


def test_without_teacher_known_answers_keep_the_banner() -> None:
    client = TestClient(standin.build_app(key=standin.AnswerKey(ROWS)))
    assert _answer(client, "What is 6 times 7?") == f"{standin.BANNER} #### 42 6*7=42"
