"""A fleet's own classifier, fetched by the real router process from a real HTTP server: requests are routed
by it (a task the packaged head does not know), a config reload with the same file fetches nothing, a reload
naming a bad file keeps the head in use, and a router whose file cannot be had starts with the packaged one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import headkit
import httpx
import pytest
from routerkit import chat, write_config


@pytest.fixture
def files(tmp_path: Path) -> Any:
    directory = tmp_path / "files"
    headkit.write(directory, "legal.npz", headkit.legal_head_bytes())
    headkit.write(directory, "garbage.npz", headkit.GARBAGE)
    with headkit.serving(directory) as server:
        yield server


def legal_config(
    pod_url: str, cloud_url: str, url: str, sha256: str, threshold: float = 0.5
) -> dict[str, Any]:
    """Tasks `legal` and `chat` (default) on the stand-in pod; the classifier at ``url``."""
    frontier = {
        "name": "frontier",
        "provider": "openai",
        "baseURL": f"{cloud_url}/v1",
        "model": "gpt-standin",
    }
    return {
        "fleet": "test",
        "defaultTask": "chat",
        "tasks": [
            {"name": "legal", "models": ["pod"], "fallbacks": ["frontier"]},
            {"name": "chat", "models": ["pod"], "fallbacks": ["frontier"]},
        ],
        "models": [{"name": "pod", "servedModelName": "pod-model", "endpoints": [pod_url]}],
        "fallbacks": [frontier],
        "classifier": {"threshold": threshold, "model": {"url": url, "sha256": sha256}},
    }


def ask(router: Any) -> httpx.Response:
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat(headkit.LEGAL_QUESTION), timeout=30)
    assert response.status_code == 200, response.text
    return response


def reloaded(router: Any, count: int) -> None:
    deadline = time.monotonic() + 30
    while router.metric("flotilla_router_config_reloads_total", result="ok") < count:
        assert time.monotonic() < deadline, f"reload {count} not applied:\n{router.proc.log()[-3000:]}"
        time.sleep(0.1)


def info(router: Any) -> list[dict[str, str]]:
    """The label sets of flotilla_router_classifier_info with value 1."""
    return [dict(labels) for (name, labels), value in router.metrics().items()
            if name == "flotilla_router_classifier_info" and value == 1]  # fmt: skip


def test_a_custom_head_routes_and_a_bad_reload_keeps_it(
    make_router: Any, clean_flaky: Any, cloud: Any, files: headkit.FileServer, tmp_path: Path
) -> None:
    good = (f"{files.url}/legal.npz", headkit.legal_sha256())
    env = {"TMPDIR": str(tmp_path)}  # the router's classifier cache: empty for this test
    router = make_router(legal_config(clean_flaky.url, cloud.url, *good), env=env)
    answer = ask(router)
    assert (answer.headers["x-flotilla-task"], answer.headers["x-flotilla-route-reason"]) == (
        "legal",
        "classifier",
    )
    [labels] = info(router)
    assert (labels["source"], labels["sha256"]) == ("custom", headkit.legal_sha256())
    assert files.gets == {"/legal.npz": 1}

    write_config(router.config_path, legal_config(clean_flaky.url, cloud.url, *good, threshold=0.6))
    reloaded(router, 1)
    assert files.gets == {"/legal.npz": 1}  # same digest: read from the cache, not fetched again

    bad_files = [(f"{files.url}/garbage.npz", headkit.GARBAGE_SHA256), (f"{files.url}/legal.npz", "0" * 64)]
    for failures, bad in enumerate(bad_files, start=1):
        write_config(router.config_path, legal_config(clean_flaky.url, cloud.url, *bad))
        reloaded(router, 1 + failures)
        assert router.metric("flotilla_router_classifier_load_failures_total") == failures
        assert ask(router).headers["x-flotilla-task"] == "legal"  # still the custom head
        assert info(router) == [labels]
    log = router.proc.log()
    assert f"custom classifier not loaded, keeping classifier {headkit.legal_sha256()}" in log
    assert "garbage.npz is not a valid classifier" in log and "but the fleet pins 0000" in log


def test_a_router_whose_head_cannot_be_had_starts_with_the_packaged_one(
    make_router: Any, clean_flaky: Any, cloud: Any, files: headkit.FileServer, tmp_path: Path
) -> None:
    env = {"TMPDIR": str(tmp_path)}
    router = make_router(
        legal_config(clean_flaky.url, cloud.url, f"{files.url}/missing.npz", headkit.legal_sha256()), env=env
    )
    [labels] = info(router)
    assert labels["source"] == "packaged"
    assert router.metric("flotilla_router_classifier_load_failures_total") == 1
    assert ask(router).headers["x-flotilla-task"] == "chat"  # the packaged head knows no `legal`
    assert "HTTP 404" in router.proc.log()

    write_config(
        router.config_path,
        legal_config(clean_flaky.url, cloud.url, f"{files.url}/legal.npz", headkit.legal_sha256()),
    )
    reloaded(router, 1)
    assert ask(router).headers["x-flotilla-task"] == "legal"
    assert info(router)[0]["source"] == "custom"
