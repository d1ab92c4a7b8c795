"""Shadow evaluation over real HTTP: the stand-in provider (answering from the math answer key) serves the
task; a candidate fleet model (the real llama.cpp server with Gemma 3 270M, or a second stand-in that knows
the key) gets mirrors. The client always gets the served answer, never waits for the candidate, and the
router's /metrics count what was mirrored, scored, agreed and failed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Standin, _start_standin
from routerkit import free_port

from flotilla.router.classifying import datasets
from flotilla.standin import BANNER

COMPLETIONS = "/v1/chat/completions"
MATH = {"x-flotilla-task": "math"}


@pytest.fixture(scope="session")
def answer_key() -> Path:
    path = datasets.shared_data() / "math-answers.jsonl"
    if not path.exists():
        pytest.fail(f"{path} is missing (the shared math answer key)")
    return path


@pytest.fixture(scope="session")
def problems(answer_key: Path) -> list[dict[str, Any]]:
    return datasets.read_jsonl(answer_key)[:8]


@pytest.fixture(scope="session")
def teacher(logs_dir: Path, answer_key: Path) -> Iterator[Standin]:
    """The served "cloud" model: answers "#### <answer>" and the solution for prompts of the key."""
    standin = _start_standin(logs_dir, "standin-teacher", "--answers", str(answer_key))
    yield standin
    standin.proc.stop()


@pytest.fixture
def student(logs_dir: Path, answer_key: Path) -> Iterator[Standin]:
    """A candidate that knows the key too (so it agrees); tests slow it down through its admin API."""
    standin = _start_standin(logs_dir, "standin-student", "--answers", str(answer_key))
    yield standin
    standin.proc.stop()


def shadow_config(teacher_url: str, candidate_url: str, **shadow: Any) -> dict[str, Any]:
    """Task math served by the teacher (a fallback: the task has no fleet model), candidate ``tuned`` (a
    fleet model at ``candidate_url``) mirrored with ``shadow``; fallback ``judge`` is the candidate's server
    speaking the OpenAI API (for score judge)."""
    return {
        "fleet": "test",
        "defaultTask": "math",
        "tasks": [
            {"name": "math", "models": [], "fallbacks": ["teacher"],
             "shadow": {"model": "tuned", "share": 1.0, **shadow}},
            {"name": "chat", "models": [], "fallbacks": ["teacher"]},
        ],
        "models": [{"name": "tuned", "servedModelName": "gemma", "endpoints": [candidate_url],
                    "firstByteTimeoutSeconds": 120.0, "timeoutSeconds": 180.0}],
        "fallbacks": [
            {"name": "teacher", "provider": "openai-compatible", "baseURL": f"{teacher_url}/v1",
             "model": "gpt-standin"},
            {"name": "judge", "provider": "openai-compatible", "baseURL": f"{candidate_url}/v1",
             "model": "gemma", "timeoutSeconds": 180.0},
        ],
    }  # fmt: skip


def ask(client: httpx.Client, prompt: str, stream: bool = False, **extra: Any) -> tuple[str, str, float]:
    """(answer text, serving model header, seconds until the client had the whole answer)."""
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 24, "stream": stream, **extra}
    started = time.perf_counter()
    if not stream:
        response = client.post(COMPLETIONS, json=body, headers=MATH)
        assert response.status_code == 200, response.text
        text = response.json()["choices"][0]["message"]["content"]
        return text, response.headers["x-flotilla-model"], time.perf_counter() - started
    parts = []
    with client.stream("POST", COMPLETIONS, json=body, headers=MATH) as response:
        assert response.status_code == 200
        model = response.headers["x-flotilla-model"]
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                for choice in json.loads(line[5:]).get("choices") or []:
                    parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts), model, time.perf_counter() - started


def shadow_counts(router: Any) -> dict[str, float]:
    samples = router.metrics()
    counts: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name.startswith("flotilla_router_shadow_") and name.endswith("_total"):
            assert dict(labels)["task"] == "math" and dict(labels)["candidate"] == "tuned"
            key = name.removeprefix("flotilla_router_shadow_").removesuffix("_total")
            counts[key] = counts.get(key, 0.0) + value
    return counts


def wait_counts(router: Any, done: int, timeout: float) -> dict[str, float]:
    """The shadow counters once ``done`` mirrors are scored or unscored."""
    deadline = time.monotonic() + timeout
    counts = shadow_counts(router)
    while counts.get("scored", 0) + counts.get("unscored", 0) < done and time.monotonic() < deadline:
        time.sleep(0.2)
        counts = shadow_counts(router)
    return counts


def test_mirrors_reach_the_llama_candidate_and_the_client_gets_the_served_answer(
    teacher: Standin, llama: str, make_router: Any, problems: list[dict[str, Any]]
) -> None:
    router = make_router(shadow_config(teacher.url, llama), admin=True)
    with router.client() as client:
        for i, row in enumerate(problems[:4]):
            text, model, _ = ask(client, row["prompt"], stream=i % 2 == 1, max_tokens=8)
            assert model == "teacher"
            assert text.startswith(BANNER) and f"#### {row['answer']}" in text
            # One at a time: llama.cpp's server answers one request after another, and on two shared
            # cores four queued mirrors can outwait the candidate's first-byte timeout.
            counts = wait_counts(router, i + 1, timeout=120)
    assert counts["mirrored"] == 4 and counts.get("dropped", 0) == 0
    assert counts["scored"] == 4 and counts.get("errors", 0) == 0  # llama answered every mirror
    assert 0 <= counts.get("agreed", 0) <= 4
    # The candidate really served them (the same upstream walk as clients' requests) ...
    assert router.metric("flotilla_router_requests_total", model="tuned", task="math", outcome="ok") == 4
    # ... and the client's requests were served by the teacher only.
    assert router.metric("flotilla_router_requests_total", model="teacher", task="math", outcome="ok") == 4


def test_a_slow_candidate_does_not_slow_the_client_and_agreement_is_counted(
    teacher: Standin, student: Standin, make_router: Any, problems: list[dict[str, Any]]
) -> None:
    delay = 3.0
    student.faults(delay=delay)  # every request to the candidate waits 3 s
    router = make_router(shadow_config(teacher.url, student.url, maxConcurrent=8), admin=True)
    with router.client() as client:
        ask(client, "warm up the connection")  # a prompt outside the key: mirrored, then unscored
        latencies = []
        for i, row in enumerate(problems[:6]):
            text, model, seconds = ask(client, row["prompt"], stream=i % 2 == 1)
            assert model == "teacher" and f"#### {row['answer']}" in text
            latencies.append(seconds)
    assert max(latencies) < 1.0, latencies  # the candidate takes 3 s; the client never waits for it
    assert shadow_counts(router).get("scored", 0) == 0  # nothing scored yet: the mirrors are still waiting
    counts = wait_counts(router, 7, timeout=30)
    assert counts["mirrored"] == 7
    assert counts["scored"] == 6 and counts["agreed"] == 6 and counts.get("errors", 0) == 0
    assert counts["unscored"] == 1  # the warm-up answer has no final answer to compare
    assert student.stats()["requests"] == 7


def test_mirrors_beyond_max_concurrent_are_dropped(
    teacher: Standin, student: Standin, make_router: Any, problems: list[dict[str, Any]]
) -> None:
    student.faults(delay=3.0)
    router = make_router(shadow_config(teacher.url, student.url, maxConcurrent=2), admin=True)
    with router.client() as client:
        for row in problems[:5]:
            ask(client, row["prompt"])
    counts = wait_counts(router, 2, timeout=30)
    assert (counts["mirrored"], counts["dropped"], counts["scored"], counts["agreed"]) == (2, 3, 2, 2)


def test_a_failing_candidate_counts_as_errors_and_the_client_never_sees_it(
    teacher: Standin, make_router: Any, problems: list[dict[str, Any]]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    router = make_router(shadow_config(teacher.url, nowhere), admin=True)
    with router.client() as client:
        for row in problems[:3]:
            text, model, _ = ask(client, row["prompt"])
            assert model == "teacher" and f"#### {row['answer']}" in text
    counts = wait_counts(router, 3, timeout=30)
    assert (counts["scored"], counts["errors"], counts.get("agreed", 0)) == (3, 3, 0)


def test_an_llm_judge_scores_the_mirrors(
    teacher: Standin, student: Standin, llama: str, make_router: Any, problems: list[dict[str, Any]]
) -> None:
    """Score judge: the fallback ``judge`` (Gemma on llama.cpp) is asked whether the candidate's answer
    (the student's, identical to the served one) agrees; each mirror gets one verdict or none."""
    config = shadow_config(teacher.url, student.url, score="judge", judge="judge")
    config["fallbacks"][1]["baseURL"] = f"{llama}/v1"
    router = make_router(config, admin=True)
    with router.client() as client:
        for i, row in enumerate(problems[:3]):
            assert ask(client, row["prompt"], max_tokens=8)[1] == "teacher"
            counts = wait_counts(router, i + 1, timeout=120)  # one judge request at a time (see above)
    assert counts["mirrored"] == 3 and counts.get("errors", 0) == 0
    assert counts.get("scored", 0) + counts.get("unscored", 0) == 3
    assert router.metric("flotilla_router_requests_total", model="judge", task="math", outcome="ok") == 3
