"""The abuse suite: over 10,000 adversarial requests against a real router process with a healthy upstream.

Requests come from hypothesis (``abusekit``: the OpenAI request schema and its mutations, 4 concurrent
keep-alive connections) and from raw sockets (``rawabuse``: framing, header injection, slow and abandoned
bodies, clients leaving mid-stream, pipelined garbage). The upstreams (stand-in providers) are healthy, so
the router must never answer 5xx. Every answer from the app is a 200 (JSON completion or SSE ending in
``[DONE]``) or an OpenAI-shaped error. Afterwards the process is alive, its resident memory grew by less than
``RSS_BOUND_MIB``, no gauge is left up, nothing was logged as a traceback, and ordinary requests still work.

Bounded: ``ABUSE_EXAMPLES`` hypothesis examples of ``BATCH`` requests each, ``RAW_ROUNDS`` rounds of the raw
cases, derandomized (the same requests every run), no example deadline (the per-request timeout bounds time).
Override the counts with ``FLOTILLA_ABUSE_EXAMPLES`` / ``FLOTILLA_ABUSE_RAW_ROUNDS``.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import rawabuse
from abusekit import Abuse, abuses
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from routerkit import chat, fleet_config, sse_events

BATCH = 4
ABUSE_EXAMPLES = int(os.environ.get("FLOTILLA_ABUSE_EXAMPLES", "2000"))
RAW_ROUNDS = int(os.environ.get("FLOTILLA_ABUSE_RAW_ROUNDS", "60"))
MIN_REQUESTS = 10_000 if "FLOTILLA_ABUSE_EXAMPLES" not in os.environ else 0
RSS_BOUND_MIB = 64
"""Why 64 MiB: the router keeps nothing per request once it is answered, and at most ``BATCH`` bodies of up to
``maxBodyBytes`` (1 MiB) are held at once, each parsed into Python objects a few times its size; 64 MiB is
room for that transient peak plus allocator fragmentation, and far below what a per-request leak over 10,000
requests would add (even 10 KiB each would be ~100 MiB)."""


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Tally:
    """Thread-safe counts for the summary: requests per category and statuses seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.categories: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()

    def add(self, category: str, status: int | None, seconds: float = 0.0) -> None:
        with self.lock:
            self.categories[category] += 1
            self.seconds[category] += seconds
            self.statuses["closed" if status is None else str(status)] += 1

    @property
    def total(self) -> int:
        return sum(self.categories.values())


def check_error_body(body: bytes, where: str) -> None:
    """An OpenAI error object: ``{"error": {"message": str, "type": str, "param", "code"}}``."""
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, where
    assert isinstance(error["message"], str) and error["message"], where
    assert isinstance(error["type"], str) and error["type"], where


def check_answer(status: int, content_type: str, body: bytes, stream: bool, where: str) -> None:
    """No 5xx; errors are OpenAI-shaped; a 200 is a completion (JSON) or a whole SSE stream."""
    assert status < 500, f"{where}: HTTP {status}: {body[:300]!r}"
    if status >= 400:
        assert content_type.startswith("application/json"), f"{where}: {status} as {content_type}"
        check_error_body(body, where)
        return
    assert status == 200, f"{where}: HTTP {status}"
    if stream and content_type.startswith("text/event-stream"):
        events = sse_events(body.decode().splitlines())
        assert events and events[-1] == "[DONE]", f"{where}: stream did not end with [DONE]: {body[-200:]!r}"
        for event in events[:-1]:
            assert "error" not in json.loads(event), f"{where}: error event {event[:200]}"
        return
    answer = json.loads(body)
    assert isinstance(answer.get("choices"), list) and answer["choices"], f"{where}: {body[:300]!r}"


@pytest.fixture
def router(make_router, cloud, clean_flaky):
    return make_router(fleet_config(clean_flaky.url, cloud.url))


def _send(clients: dict[int, httpx.Client], url: str, abuse: Abuse, tally: Tally) -> None:
    client = clients.get(threading.get_ident())
    if client is None:  # one keep-alive connection per sending thread
        client = clients[threading.get_ident()] = httpx.Client(base_url=url, timeout=30)
    headers = [(b"content-type", b"application/json"), *abuse.headers]
    started = time.perf_counter()
    try:
        response = client.post(abuse.path, content=abuse.body, headers=headers)
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        # The router answered 413 on content-length and closed before a multi-MiB body was all written.
        assert abuse.category == "huge-string" and len(abuse.body) > 1_048_576, abuse.category
        tally.add(abuse.category, None, time.perf_counter() - started)
        return
    tally.add(abuse.category, response.status_code, time.perf_counter() - started)
    where = f"{abuse.category} {abuse.path} {abuse.headers!r} {abuse.body[:200]!r}"
    check_answer(
        response.status_code, response.headers.get("content-type", ""), response.content, abuse.stream, where
    )
    for name in (b"x-injected", b"x-flotilla-cost-usd"):
        if response.status_code != 200:
            assert name.decode() not in response.headers, where


def _run_hypothesis(url: str, tally: Tally) -> None:
    clients: dict[int, httpx.Client] = {}
    pool = ThreadPoolExecutor(BATCH)

    @settings(
        max_examples=ABUSE_EXAMPLES,
        derandomize=True,  # the same requests on every run: a CI failure reproduces locally
        database=None,
        deadline=None,  # per-request timeouts bound the time; shared CI cores make deadlines flaky
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=True,
    )
    @given(st.lists(abuses(), min_size=BATCH, max_size=BATCH))
    def batch(requests: list[Abuse]) -> None:
        for future in [pool.submit(_send, clients, url, abuse, tally) for abuse in requests]:
            future.result()

    try:
        batch()
    finally:
        pool.shutdown()
        for client in clients.values():
            client.close()


def _run_raw(host: str, port: int, tally: Tally) -> None:
    cases = rawabuse.cases() * RAW_ROUNDS

    def run(case: rawabuse.Case) -> tuple[list[rawabuse.Outcome], float]:
        started = time.perf_counter()
        outcomes = case(host, port)
        return outcomes, time.perf_counter() - started

    with ThreadPoolExecutor(BATCH) as pool:
        for outcomes, seconds in pool.map(run, cases):
            for outcome in outcomes:
                tally.add(outcome.category, outcome.status, seconds / len(outcomes))
                where = f"{outcome.category}: {outcome.status} {outcome.headers} {outcome.body[:300]!r}"
                if outcome.status is None:
                    continue
                assert outcome.status < 500, where
                assert b"x-injected" not in outcome.headers, where
                if outcome.from_app and outcome.status >= 400:
                    check_error_body(outcome.body, where)


def _summary(tally: Tally, seconds: float, rss_before: int, rss_after: int, rss_peak: int) -> str:
    lines = ["", "abuse suite: requests by category", "| category | requests | mean ms |", "|---|---|---|"]
    lines += [
        f"| {name} | {count:,} | {1000 * tally.seconds[name] / count:.1f} |"
        for name, count in sorted(tally.categories.items())
    ]
    lines += [f"| **total** | **{tally.total:,}** | |", "", "| status | responses |", "|---|---|"]
    lines += [f"| {status} | {count:,} |" for status, count in sorted(tally.statuses.items())]
    lines += [
        "",
        f"duration {seconds:.1f} s; RSS {rss_before / 1024:.1f} MiB after warm-up, "
        f"{rss_after / 1024:.1f} MiB at the end (+{(rss_after - rss_before) / 1024:.1f} MiB), "
        f"peak sampled {rss_peak / 1024:.1f} MiB",
    ]
    return "\n".join(lines)


def test_router_survives_abuse(router, clean_flaky, capsys):
    pid = router.proc.pid
    host, port = "127.0.0.1", int(router.url.rsplit(":", 1)[1])
    with httpx.Client(base_url=router.url, timeout=30) as client:  # warm up: classifier, pools, allocator
        for i in range(50):
            assert client.post(
                "/v1/chat/completions", json=chat(f"warm up {i}", stream=i % 2 == 0)
            ).is_success
    rss_before = _rss_kib(pid)
    peak = [rss_before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            peak[0] = max(peak[0], _rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tally = Tally()
    started = time.monotonic()
    try:
        _run_raw(host, port, tally)
        _run_hypothesis(router.url, tally)
    finally:
        sampling.set()
        sampler.join()
        seconds = time.monotonic() - started
        alive = router.proc.popen.poll() is None
        rss_after = _rss_kib(pid) if alive else 0
        with capsys.disabled():
            print(_summary(tally, seconds, rss_before, rss_after, peak[0]))
    assert alive, f"the router died:\n{router.proc.log()[-3000:]}"
    assert tally.total >= MIN_REQUESTS
    assert (rss_after - rss_before) / 1024 < RSS_BOUND_MIB
    _assert_still_correct(router, clean_flaky)


def _assert_still_correct(router, standin) -> None:
    """Plain and streamed answers, both protocols; /metrics scrapes; no gauge left up; no traceback."""
    with httpx.Client(base_url=router.url, timeout=30) as client:
        for model in ("pod", "frontier", "claude"):
            answer = client.post("/v1/chat/completions", json=chat("after the storm", model=model))
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"].startswith(
                "[flotilla stand-in provider]"
            )
            with client.stream(
                "POST", "/v1/chat/completions", json=chat("after the storm", model=model, stream=True)
            ) as streamed:
                assert streamed.status_code == 200
                events = sse_events(list(streamed.iter_lines()))
            assert events[-1] == "[DONE]"
            text = "".join(
                c["choices"][0]["delta"].get("content", "")
                for c in map(json.loads, events[:-1])
                if c["choices"]
            )
            assert text.startswith("[flotilla stand-in provider]")
        completion = client.post("/v1/completions", json={"prompt": "after", "max_tokens": 4})
        assert completion.status_code == 200 and completion.json()["choices"][0]["text"]
    deadline = time.monotonic() + 10  # abandoned streams are closed as the relay notices
    while time.monotonic() < deadline and standin.stats()["active_streams"]:
        time.sleep(0.1)
    assert standin.stats()["active_streams"] == 0
    metrics = router.metrics()
    in_flight = {labels: v for (name, labels), v in metrics.items() if name == "flotilla_router_in_flight"}
    assert in_flight and not any(in_flight.values()), in_flight
    assert "Traceback" not in router.proc.log()


def test_abuse_helpers_check_what_they_claim() -> None:
    """The checker itself fails on a 5xx, a non-OpenAI error body and a stream cut short."""
    error = json.dumps({"error": {"message": "m", "type": "t", "param": None, "code": None}}).encode()
    check_answer(400, "application/json", error, False, "ok")
    bad: list[tuple[int, str, bytes, bool]] = [
        (500, "application/json", error, False),
        (400, "application/json", b'{"detail": "no"}', False),
        (400, "text/plain", b"Bad Request", False),
        (200, "text/event-stream", b'data: {"choices": []}\n\n', True),
        (200, "application/json", b'{"choices": []}', False),
    ]
    for args in bad:
        with pytest.raises((AssertionError, KeyError)):
            check_answer(*args, "bad")
