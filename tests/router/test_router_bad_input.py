"""Bad requests get 4xx with OpenAI's error JSON, never a traceback."""

from __future__ import annotations

import httpx
import pytest
from routerkit import chat, fleet_config


@pytest.fixture
def router(make_router, clean_flaky, cloud):
    config = fleet_config(clean_flaky.url, cloud.url)
    config["maxBodyBytes"] = 4096
    return make_router(config)


CASES = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_type", None),
    (b'{"model": "auto"}', 400, "missing_required_parameter", "messages"),
    (b'{"messages": "hi"}', 400, "invalid_type", "messages"),
    (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "invalid_type", "messages[0].role"),
    (b'{"messages": [{"role": ["user"], "content": "x"}]}', 400, "invalid_type", "messages[0].role"),
    (b'{"messages": [{"role": {"a": 1}, "content": "x"}]}', 400, "invalid_type", "messages[0].role"),
    (b'{"messages": [{"role": "user", "content": 5}]}', 400, "invalid_type", "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "invalid_type", "stream"),
    (
        b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        400,
        "invalid_type",
        "max_tokens",
    ),
    (b'{"messages": [{"role": "user", "content": "x"}], "model": 7}', 400, "invalid_type", "model"),
    (
        b'{"messages": [{"role": "user", "content": "x"}], "model": "claude", "stop": 5}',
        400,
        "invalid_type",
        "stop",
    ),
    (b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}', 404, "model_not_found", "model"),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), CASES)
def test_bad_chat_requests(router, body: bytes, status: int, code: str, param: str | None):
    response = httpx.post(f"{router.url}/v1/chat/completions", content=body, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error" and error["message"]


def test_body_over_the_limit_is_413(router):
    big = chat("x" * 5000)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=big, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_task_header_and_bad_prompt_and_unknown_path(router):
    response = httpx.post(
        f"{router.url}/v1/chat/completions",
        json=chat("x"),
        headers={"x-flotilla-task": "astrology"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_task"
    response = httpx.post(f"{router.url}/v1/completions", json={"prompt": 3}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"
    response = httpx.get(f"{router.url}/v1/nothing", timeout=30)
    assert response.status_code == 404 and "error" in response.json()
    response = httpx.get(f"{router.url}/v1/chat/completions", timeout=30)
    assert response.status_code == 405 and "error" in response.json()


def test_bodies_never_logged(router):
    secret = "do-not-log-this-prompt-7f3a"
    httpx.post(f"{router.url}/v1/chat/completions", json=chat(secret), timeout=30)
    httpx.post(
        f"{router.url}/v1/chat/completions", content=b'{"messages": "' + secret.encode() + b'"', timeout=30
    )
    assert secret not in router.proc.log()


def test_invalid_config_at_startup_is_a_one_line_error(tmp_path):
    import subprocess

    from routerkit import PYTHON

    path = tmp_path / "bad.yaml"
    path.write_text("defaultTask: chat\ntasks: [{name: chat, models: [ghost]}]\n")
    done = subprocess.run(
        [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "task 'chat' routes to unknown model 'ghost'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    missing = subprocess.run(
        [PYTHON, "-m", "flotilla.cli", "router", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_deeply_nested_json_is_a_400_not_a_500(make_router, clean_flaky, cloud):
    """~200 KB of nested arrays used to raise RecursionError in the JSON parser: a 500 and a traceback."""
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    depth = 100_000
    nested = b"[" * depth + b"]" * depth
    bodies = [
        nested,
        b'{"messages": [{"role": "user", "content": "hi"}], "tools": ' + nested + b"}",
    ]
    for body in bodies:
        response = httpx.post(f"{router.url}/v1/chat/completions", content=body, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("invalid_json", "invalid_request_error")
        assert "nested" in error["message"]
    assert "Traceback" not in router.proc.log()
    assert httpx.post(f"{router.url}/v1/chat/completions", json=chat("still fine"), timeout=30).is_success


def test_lone_surrogates_are_classified_and_answered(router):
    """A lone surrogate in a prompt (a JSON escape, or CESU-8 bytes) made the classifier's tokenizer raise:
    a 500 for every ``model: auto`` request carrying one."""
    bodies = [
        b'{"messages": [{"role": "user", "content": "fix this \\ud800 code"}]}',
        b'{"messages": [{"role": "user", "content": "fix this \xed\xa0\x80 code"}], "stream": true}',
        b'{"prompt": "\\udfff", "max_tokens": 3}',
    ]
    for body in bodies:
        path = "/v1/completions" if b"prompt" in body else "/v1/chat/completions"
        response = httpx.post(f"{router.url}{path}", content=body, timeout=30)
        assert response.status_code == 200, response.text
        assert "[flotilla stand-in provider]" in response.text
    assert "Traceback" not in router.proc.log()


def test_text_parts_that_are_not_strings_reach_anthropic_without_them(router):
    """A text part whose text is a number made the Anthropic translation raise TypeError: a 500."""
    content = [{"type": "text", "text": 5}, {"type": "text", "text": "hello there"}]
    body = {"model": "claude", "messages": [{"role": "user", "content": content}], "max_tokens": 8}
    response = httpx.post(f"{router.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert "hello there" in response.json()["choices"][0]["message"]["content"]
