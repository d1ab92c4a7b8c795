"""Distillation capture into a real S3 store (SeaweedFS built from source, see storekit): traces land with
their fields; every trace captured is in the store after a router SIGTERM under load and after a store
outage; and while the store is down requests stay as fast as before (the request path never waits on it)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from routerkit import PYTHON, chat, fleet_config
from storekit import Store

COMPLETIONS = "/v1/chat/completions"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Store]:
    running = Store(tmp_path_factory.mktemp("seaweedfs"), logs_dir)
    running.start()
    yield running
    running.stop()


def s3_config(cloud_url: str, store: Store, tmp: Path, prefix: str, **capture: Any) -> dict[str, Any]:
    config = fleet_config(None, cloud_url)  # the pod has no endpoint: chat is answered by the cloud
    config["tasks"][0]["capture"] = {"sample": 1.0, "from": "cloud"}
    config["capture"] = {"s3": store.sink(prefix), "spoolDir": str(tmp / "spool"), **capture}
    return config


def _ask(client: httpx.Client, text: str, stream: bool) -> bool:
    """One request; True when the whole answer arrived."""
    body = chat(text, max_tokens=12, stream=stream)
    headers = {"x-flotilla-task": "chat"}
    if not stream:
        return client.post(COMPLETIONS, json=body, headers=headers).status_code == 200
    with client.stream("POST", COMPLETIONS, json=body, headers=headers) as response:
        return response.status_code == 200 and "data: [DONE]" in response.read().decode()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_traces_land_in_s3(cloud: Any, store: Store, make_router: Any, tmp_path: Path) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    router = make_router(
        s3_config(cloud.url, store, tmp_path, prefix, segmentMaxSeconds=0.2), store.env(), admin=True
    )
    with router.client() as client:
        assert all(_ask(client, f"mail ops@example.com question {i}", i % 2 == 1) for i in range(6))
    _wait(lambda: len(store.lines(prefix)) >= 6, 20, "6 traces in the store")
    records = store.lines(prefix)
    assert len(records) == 6 and len({r["id"] for r in records}) == 6
    assert all(r["model"] == "frontier" and r["cloud"] and r["task"] == "chat" for r in records)
    assert all("[EMAIL]" in r["messages"][0]["content"] and "example.com" not in r["answer"] for r in records)
    keys = [o["Key"] for o in store.client().list_objects_v2(Bucket="traces", Prefix=prefix)["Contents"]]
    assert all(k.startswith(f"{prefix}test/20") and k.endswith(".jsonl") for k in keys)
    assert router.metric("flotilla_router_traces_uploaded_total") == 6


def test_export_from_the_store(cloud: Any, store: Store, make_router: Any, tmp_path: Path) -> None:
    """`flotilla traces export` reading the bucket: each distinct exchange once, split train/eval."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    router = make_router(s3_config(cloud.url, store, tmp_path, prefix, segmentMaxSeconds=0.2), store.env())
    with router.client() as client:
        for i in range(30):
            assert _ask(client, f"export question {i % 20}", False)  # 10 repeats of the same exchange
    _wait(lambda: len(store.lines(prefix)) >= 30, 20, "30 traces in the store")
    out = tmp_path / "dataset"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "flotilla-test",
        "AWS_SECRET_ACCESS_KEY": "flotilla-test-secret",
    }
    argv = [PYTHON, "-m", "flotilla.cli", "traces", "export", "--source", f"s3://traces/{prefix}"]
    argv += ["--endpoint-url", store.url, "--task", "chat", "--format", "openai-chat", "--since", "1h"]
    done = subprocess.run([*argv, "--eval-fraction", "0.2", "-o", str(out)], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["read"], summary["duplicates"], summary["train"] + summary["eval"]) == (30, 10, 20)
    rows = [json.loads(line) for name in ("train", "eval") for line in (out / f"{name}.jsonl").open()]
    assert sorted(r["messages"][0]["content"] for r in rows) == sorted(
        f"export question {i}" for i in range(20)
    )
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    denied = subprocess.run([*argv, "-o", str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "cannot read traces from s3://traces" in denied.stderr


def test_sigterm_under_load_loses_no_trace(
    cloud: Any, store: Store, make_router: Any, tmp_path: Path
) -> None:
    """Segments are sealed only every 60 s here, so everything captured is still in the spool when SIGTERM
    comes: the shutdown flush must upload all of it."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    router = make_router(s3_config(cloud.url, store, tmp_path, prefix, segmentMaxSeconds=60), store.env())
    answered = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with router.client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                delay = " [standin delay=0.3]" if i % 3 == 0 else ""  # some in flight at SIGTERM
                try:
                    if _ask(client, f"worker {worker} request {i}{delay}", i % 2 == 0):
                        answered.append(1)
                except httpx.HTTPError:
                    return  # the router is gone
                i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    os.kill(router.proc.pid, signal.SIGTERM)
    # uvicorn shuts down gracefully (in-flight requests finish, then the lifespan flushes the spool) and
    # then re-raises the signal it caught: exit by SIGTERM, after "Application shutdown complete".
    assert router.proc.popen.wait(60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in router.proc.log(), router.proc.log()[-3000:]
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(answered) > 20
    assert len(store.lines(prefix)) == len(answered)
    assert not list((tmp_path / "spool").glob("*.jsonl")) and not list((tmp_path / "spool").glob("*.open"))


def test_store_outage_keeps_requests_fast_and_loses_nothing(
    cloud: Any, store: Store, make_router: Any, tmp_path: Path
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    router = make_router(
        s3_config(cloud.url, store, tmp_path, prefix, segmentMaxSeconds=0.2), store.env(), admin=True
    )

    def timed(client: httpx.Client, count: int, label: str) -> list[float]:
        took = []
        for i in range(count):
            started = time.perf_counter()
            assert _ask(client, f"{label} {i}", i % 2 == 0)
            took.append(time.perf_counter() - started)
        return took

    with router.client() as client:
        before = timed(client, 30, "before")
        _wait(lambda: router.metric("flotilla_router_traces_uploaded_total") == 30, 20, "first uploads")
        store.kill()
        try:
            during = timed(client, 60, "during")
            _wait(
                lambda: router.metric("flotilla_router_trace_upload_failures_total") >= 2,
                30,
                "failed uploads",
            )
            assert router.metric_sum("flotilla_router_traces_captured_total", task="chat") == 90
            assert router.metric("flotilla_router_traces_uploaded_total") == 30
        finally:
            store.start()
    _wait(lambda: router.metric("flotilla_router_traces_uploaded_total") == 90, 60, "the backlog uploaded")
    records = store.lines(prefix)
    assert len(records) == 90 and len({r["id"] for r in records}) == 90
    assert router.metric("flotilla_router_trace_spool_bytes") == 0
    # the request path never waited on the store: as fast with it down as with it up
    assert max(during) < 1.0, max(during)
    assert statistics.median(during) < statistics.median(before) + 0.05, (before, during)
