"""Config hot reload: a ConfigMap-style symlink swap takes effect without restart or failed requests."""

from __future__ import annotations

import threading
import time

import httpx
from routerkit import chat, fleet_config, write_config


def _two_model_config(flaky_url: str, cloud_url: str, serve: str) -> dict[str, object]:
    config = fleet_config(flaky_url, cloud_url)
    models = config["models"]
    assert isinstance(models, list)
    models.append({**models[0], "name": "other", "endpoints": [cloud_url]})
    tasks = config["tasks"]
    assert isinstance(tasks, list)
    tasks[0]["models"] = [serve]
    return config


def test_reload_under_load_drops_nothing(make_router, clean_flaky, cloud):
    router = make_router(_two_model_config(clean_flaky.url, cloud.url, "pod"))
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    streamed: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=router.url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v1/chat/completions", json=chat("hello"))
                results.append((response.status_code, response.headers.get("x-flotilla-model", "")))

    def long_stream() -> None:  # in flight across several reloads
        body = chat("long [standin chunk_delay=0.1 chunks=30]", stream=True, max_tokens=30)
        with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
            streamed.extend(response.iter_lines())

    workers = [threading.Thread(target=load) for _ in range(4)] + [threading.Thread(target=long_stream)]
    for worker in workers:
        worker.start()
    for i in range(6):
        time.sleep(0.5)
        write_config(
            router.config_path, _two_model_config(clean_flaky.url, cloud.url, ("other", "pod")[i % 2])
        )
        # each write must be taken up before the next: on a busy machine a reload (the classifier is
        # rebuilt) can take longer than 0.5 s, and writes that come faster are seen as one change
        deadline = time.monotonic() + 20
        while router.metric("flotilla_router_config_reloads_total", result="ok") < i + 1:
            assert time.monotonic() < deadline, f"reload {i + 1} not taken up in 20 s"
            time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join()
    assert len(results) > 20
    assert {status for status, _ in results} == {200}
    assert {model for _, model in results} == {"pod", "other"}
    assert streamed[-2:] == ["data: [DONE]", ""] or streamed[-1] == "data: [DONE]"
    assert router.metric("flotilla_router_config_reloads_total", result="ok") == 6


def test_invalid_config_keeps_the_previous_one(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    broken = fleet_config(clean_flaky.url, cloud.url)
    broken["defaultTask"] = "no-such-task"
    write_config(router.config_path, broken)
    deadline = time.monotonic() + 5
    while router.metric("flotilla_router_config_reloads_total", result="invalid") < 1:
        assert time.monotonic() < deadline, "the invalid config was not noticed"
        time.sleep(0.1)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 200 and response.headers["x-flotilla-model"] == "pod"
    assert "keeping the previous config" in router.proc.log()
    assert "defaultTask 'no-such-task'" in router.proc.log()
