"""Distillation capture over real HTTP into a directory sink (the PVC case): what lands, what is left out,
and that nothing matching a secret pattern reaches the store. The S3 cases (a real SeaweedFS, SIGTERM and
store outages) are in test_router_capture_s3.py."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from routerkit import chat, fleet_config, write_config

from flotilla.api.captures import CAPTURED_METRIC as CAPTURED
from flotilla.capturing import redacting

COMPLETIONS = "/v1/chat/completions"


def capture_config(cloud_url: str, tmp: Path, sample: float = 1.0, source: str = "all") -> dict[str, Any]:
    """The router test fleet (its pod has no endpoint: chat falls back to the stand-in cloud) with chat
    captured into ``tmp/store``."""
    config = fleet_config(None, cloud_url)
    config["tasks"][0]["capture"] = {"sample": sample, "from": source}
    config["capture"] = {
        "directory": {"path": str(tmp / "store")},
        "spoolDir": str(tmp / "spool"),
        "segmentMaxSeconds": 0.2,
        "redact": [r"ACME-\d{6}"],
    }
    return config


def stored(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def wait_stored(root: Path, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    records = stored(root) if root.exists() else []
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        records = stored(root) if root.exists() else []
    return records


def test_plain_and_streamed_answers_land_with_their_fields(
    cloud: Any, make_router: Any, tmp_path: Path
) -> None:
    router = make_router(capture_config(cloud.url, tmp_path), admin=True)
    with router.client() as client:
        for i in range(3):
            assert (
                client.post(COMPLETIONS, json=chat(f"plain question {i}", max_tokens=20)).status_code == 200
            )
        for i in range(3):
            body = chat(f"streamed question {i}", max_tokens=20, stream=True)
            with client.stream("POST", COMPLETIONS, json=body) as response:
                assert response.status_code == 200
                assert "[DONE]" in response.read().decode()
        # a task without capture leaves nothing
        assert client.post(COMPLETIONS, json=chat("prose please"), headers={"x-flotilla-task": "writing"})
    records = wait_stored(tmp_path / "store", 6)
    assert len(records) == 6
    assert router.metric_sum(CAPTURED, task="chat") == 6
    replicas = {dict(labels).get("replica") for name, labels in router.metrics() if name.startswith(CAPTURED)}
    assert len(replicas) == 1 and None not in replicas  # one process: one replica id the operator sums by
    by_prompt = {r["messages"][0]["content"]: r for r in records}
    assert set(by_prompt) == {f"{kind} question {i}" for kind in ("plain", "streamed") for i in range(3)}
    for prompt, record in by_prompt.items():
        assert record["v"] == 1 and record["fleet"] == "test" and record["task"] == "chat"
        assert record["model"] == "frontier" and record["cloud"] is True and record["fellBack"] is True
        assert record["kind"] == "chat" and record["key"] is None
        assert record["stream"] is prompt.startswith("streamed")
        assert record["answer"].startswith("[flotilla stand-in provider] echo:")
        assert prompt.split()[0] in record["answer"]
        assert record["finishReason"] in ("stop", "length")
        assert record["usage"]["promptTokens"] > 0 and record["usage"]["completionTokens"] > 0
        assert record["latencyMs"] > 0 and 0 < record["classifierScore"] <= 1
    segments = list((tmp_path / "store" / "test").rglob("*.jsonl"))
    assert segments and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.parent.name) for p in segments)
    deadline = time.monotonic() + 5
    while router.metric("flotilla_router_traces_uploaded_total") < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert router.metric("flotilla_router_traces_uploaded_total") == 6
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # acknowledged segments leave the spool


def test_sample_and_from_filters(cloud: Any, make_router: Any, tmp_path: Path) -> None:
    config = capture_config(cloud.url, tmp_path, sample=0.5)
    config["tasks"][1]["capture"] = {"sample": 1.0, "from": "fallbacks"}  # code: pod first, then frontier
    router = make_router(config)
    with router.client() as client:
        for i in range(200):
            assert client.post(COMPLETIONS, json=chat(f"q{i}", max_tokens=2)).status_code == 200
    records = wait_stored(tmp_path / "store", 70)
    time.sleep(1)
    records = stored(tmp_path / "store")
    assert 60 <= len(records) <= 140, len(records)  # binomial(200, 0.5): 5 standard deviations


def test_from_cloud_skips_fleet_answers(cloud: Any, flaky: Any, make_router: Any, tmp_path: Path) -> None:
    """With a healthy pod (a stand-in playing one), `from: cloud` records none of its answers, `all` does."""
    config = capture_config(cloud.url, tmp_path, source="cloud")
    config["models"][0]["endpoints"] = [flaky.url]
    config["tasks"][1]["capture"] = {"sample": 1.0, "from": "all"}
    router = make_router(config)
    with router.client() as client:
        for i in range(4):
            assert client.post(COMPLETIONS, json=chat(f"chat {i}")).headers["x-flotilla-model"] == "pod"
            code = client.post(COMPLETIONS, json=chat(f"code {i}"), headers={"x-flotilla-task": "code"})
            assert code.headers["x-flotilla-model"] == "pod"
    records = wait_stored(tmp_path / "store", 4)
    time.sleep(0.5)
    records = stored(tmp_path / "store")
    assert sorted(r["task"] for r in records) == ["code"] * 4
    assert all(r["model"] == "pod" and not r["cloud"] and not r["fellBack"] for r in records)


def test_key_policy_opts_out(cloud: Any, make_router: Any, tmp_path: Path) -> None:
    config = capture_config(cloud.url, tmp_path)
    keys = []
    for name, capture in (("open", True), ("private", False)):
        digest = hashlib.sha256(f"secret-{name}".encode()).hexdigest()
        keys.append({"name": name, "sha256": digest, "cloudFallbacks": True, "capture": capture})
    config["access"] = {"keys": keys}
    router = make_router(config)
    for name in ("open", "private", "open"):
        headers = {"authorization": f"Bearer secret-{name}"}
        response = httpx.post(f"{router.url}{COMPLETIONS}", json=chat(name), headers=headers, timeout=30)
        assert response.status_code == 200
    records = wait_stored(tmp_path / "store", 2)
    time.sleep(0.5)
    records = stored(tmp_path / "store")
    assert [r["key"] for r in records] == ["open", "open"]


SECRETS = [
    "write to jane.roe@example.org now",
    "call me on +44 20 7946 0958 today",
    "my card is 4539 1488 0343 6467 ok",
    "use sk-proj-Q8zK2mN4pR6tV8xB1cD3fG5h please",
    "header Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXZhbHVl",
    "aws AKIAIOSFODNN7EXAMPLE key",
    "customer ACME-123456 complained",
    "the token zQ7vK2pL9xW4mN8bR3tY6cH1jF5gD0sA here",
]
"""Each line holds one secret the store must never see; the stand-in echoes the prompt back, so each also
shows up in the answer."""

PATTERNS = [
    re.compile(p)
    for p in (
        r"[\w.+-]+@[\w-]+\.[\w.]+",
        r"\+44 20 7946 0958",
        r"4539\D?1488\D?0343\D?6467",
        r"sk-proj-",
        r"eyJ[\w-]+\.eyJ",
        r"AKIA[A-Z0-9]{16}",
        r"ACME-\d{6}",
        r"zQ7vK2pL9xW4mN8bR3tY6cH1jF5gD0sA",
    )
]


def test_nothing_matching_a_secret_pattern_reaches_the_store(
    cloud: Any, make_router: Any, tmp_path: Path
) -> None:
    router = make_router(capture_config(cloud.url, tmp_path))
    with router.client(headers={"x-flotilla-task": "chat"}) as client:  # what the classifier says aside
        for text in SECRETS:
            assert client.post(COMPLETIONS, json=chat(text, max_tokens=40)).status_code == 200
            body = chat(f"stream {text}", max_tokens=40, stream=True)
            with client.stream("POST", COMPLETIONS, json=body) as response:
                response.read()
    records = wait_stored(tmp_path / "store", 2 * len(SECRETS))
    assert len(records) == 2 * len(SECRETS)
    text = "\n".join(p.read_text() for p in (tmp_path / "store").rglob("*.jsonl"))
    for pattern in PATTERNS:
        assert not pattern.search(text), pattern.pattern
    placeholders = {"[EMAIL]", "[PHONE]", "[CARD]", "[SECRET]", "[REDACTED]"}
    assert all(p in text for p in placeholders)
    # the pure redactor agrees with what the router stored
    redactor = redacting.Redactor([r"ACME-\d{6}"])
    assert all(not any(p.search(redactor.text(s)) for p in PATTERNS) for s in SECRETS)


def test_a_reloaded_redaction_pattern_applies_without_a_restart(
    cloud: Any, make_router: Any, tmp_path: Path
) -> None:
    config = capture_config(cloud.url, tmp_path)
    router = make_router(config, admin=True)
    headers = {"x-flotilla-task": "chat"}
    with router.client(headers=headers) as client:
        assert client.post(COMPLETIONS, json=chat("ticket TKT-4242 first")).status_code == 200
        assert len(wait_stored(tmp_path / "store", 1)) == 1  # written before the reload
        config["capture"]["redact"] = [r"ACME-\d{6}", r"TKT-\d+"]
        write_config(router.config_path, config)
        deadline = time.monotonic() + 10
        while router.metric("flotilla_router_config_reloads_total", result="ok") < 1:
            assert time.monotonic() < deadline, "the config was not reloaded"
            time.sleep(0.1)
        assert client.post(COMPLETIONS, json=chat("ticket TKT-4242 second")).status_code == 200
    records = {r["messages"][0]["content"].split()[-1]: r for r in wait_stored(tmp_path / "store", 2)}
    assert records["first"]["messages"][0]["content"] == "ticket TKT-4242 first"
    assert records["second"]["messages"][0]["content"] == "ticket [REDACTED] second"
    assert "TKT-4242" not in records["second"]["answer"]
