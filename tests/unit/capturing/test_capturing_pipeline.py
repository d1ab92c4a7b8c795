"""The pipeline end to end on a real directory sink: small traces are built on the event loop, a huge one in
a worker thread (so it cannot stall the loop), and every one of them is redacted, spooled and uploaded by
``close``; a full buffer drops the newest with the metric."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from flotilla.api.routerconfig import CaptureSettings
from flotilla.capturing import pipeline, traces

BODY = json.dumps({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}).encode()


def _raw(content: str) -> traces.Raw:
    return traces.Raw(
        fleet="f", task="t", kind="chat", model="m", cloud=False, fell_back=False, reason="", key=None,
        score=0.0, latency=0.0, wall_time=0.0, stream=False, messages=[{"role": "user", "content": content}],
        body=BODY,
    )  # fmt: skip


def _pipeline(tmp_path: Path, queue_size: int = 100) -> tuple[pipeline.Pipeline, CollectorRegistry]:
    settings = CaptureSettings.model_validate(
        {
            "directory": {"path": str(tmp_path / "store")},
            "spoolDir": str(tmp_path / "spool"),
            "queueSize": queue_size,
        }
    )
    registry = CollectorRegistry()
    sink = pipeline.make_sink(settings, {})
    return pipeline.Pipeline(settings, "f", "r", sink, pipeline.CaptureMetrics(registry)), registry


def _stored(tmp_path: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in (tmp_path / "store").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]


def test_small_and_huge_traces_are_all_redacted_and_stored(tmp_path: Path) -> None:
    huge = "mail ann@example.com " + "word " * 400_000
    assert traces.size(_raw(huge)) > pipeline.LARGE

    async def run() -> None:
        flow, _ = _pipeline(tmp_path)
        await flow.start()
        for i in range(20):
            flow.offer(_raw(f"question {i} from bob@example.com"))
        flow.offer(_raw(huge))
        await flow.close()

    asyncio.run(run())
    stored = _stored(tmp_path)
    contents = [str(r["messages"][0]["content"]) for r in stored]  # type: ignore[index]
    assert len(stored) == 21 and not any("@example.com" in c for c in contents)
    assert sum(c.startswith("mail [EMAIL] word") for c in contents) == 1


def test_a_full_buffer_drops_the_newest(tmp_path: Path) -> None:
    async def run() -> CollectorRegistry:
        flow, registry = _pipeline(tmp_path, queue_size=5)
        await flow.start()
        for i in range(8):  # one loop turn: nothing is built yet, so the buffer fills
            flow.offer(_raw(f"q{i}"))
        await flow.close()
        return registry

    registry = asyncio.run(run())
    assert registry.get_sample_value("flotilla_router_traces_dropped_total", {"reason": "queue_full"}) == 3
    assert sorted(str(r["messages"][0]["content"]) for r in _stored(tmp_path)) == [f"q{i}" for i in range(5)]  # type: ignore[index]
