"""No captured trace is lost when the router pod is killed or the store is briefly down, on the real node
with the helm-installed operator (issue 14's acceptance): fleet `recorder` captures every answer of `chat`
(the example's stand-in provider answers it) into a real S3-compatible store (SeaweedFS built from source,
`object_store`); the count of answers the clients got equals the count of traces in the store after

1. the router pod is deleted right after a burst (its traces still in the open spool segment, which is
   sealed every 10 s: the SIGTERM flush uploads them; an object written after the delete shows it did), and
2. the store is killed (SIGKILL) while the new router pod answers another burst at its usual speed, then
   started again: the uploader's retries deliver the spooled traces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from objectstores import BUCKET, Store, fleet_with_keys, source_keys

from clusterlib.waiting import wait_until
from demolib import asking, installing
from demolib.forwarding import port_forward
from demolib.installing import Target
from demolib.tools import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

FLEET = "recorder"
SECRET = "recorder-store"
PREFIX = "recorder-traces/"
BURST = 40


def fleet(store: Store) -> dict[str, Any]:
    example = yaml.safe_load((installing.EXAMPLE / "fleet.yaml").read_text())
    sink = {"s3": {"endpoint": store.url, "bucket": BUCKET, "prefix": PREFIX, **source_keys(SECRET)}}
    routing = {
        "defaultTask": "chat",
        "tasks": [{"name": "chat", "distillation": {"capture": {"sample": 1, "from": "all"}}}],
    }
    spec = {"fallbacks": example["spec"]["fallbacks"], "routing": routing,
            "router": example["spec"]["router"], "distillation": {"sink": sink}}  # fmt: skip
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ModelFleet", "metadata": {"name": FLEET},
            "spec": spec}  # fmt: skip


def stored(store: Store) -> list[dict[str, Any]]:
    return store.lines(f"{PREFIX}{FLEET}/")


def newest_write(store: Store) -> datetime:
    listed = store.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{FLEET}/")
    return max(item["LastModified"] for item in listed.get("Contents", ()))


def router_pods(tools: Tools, namespace: str) -> list[dict[str, Any]]:
    return installing.pods_of(tools, namespace, f"flotilla.dev/fleet={FLEET},flotilla.dev/component=router")


def burst(tools: Tools, namespace: str, label: str) -> list[float]:
    """BURST chat requests through the router; each must be answered. Their latencies (s)."""
    seconds = []
    with port_forward(tools, namespace, f"svc/{FLEET}-router", 8080) as port:
        for n in range(BURST):
            answer = asking.chat(f"http://127.0.0.1:{port}", f"{label} request {n}: say hi", max_tokens=8)
            assert answer.status == 200, answer.text
            seconds.append(answer.seconds)
    return seconds


@pytest.fixture(scope="module")
def recorder(installed: Target, tools: Tools, object_store: Store) -> Iterator[str]:
    with fleet_with_keys(tools, installed.namespace, fleet(object_store), SECRET):
        installing.wait_fleet_ready(tools, installed.namespace, 300, name=FLEET)
        yield installed.namespace


def test_no_trace_is_lost_to_a_router_pod_kill_or_a_store_outage(
    recorder: str, tools: Tools, object_store: Store
) -> None:
    namespace = recorder
    # 1. A burst, then the router pod deleted at once (graceful: SIGTERM, up to 60 s to flush).
    burst(tools, namespace, "before")
    [pod] = router_pods(tools, namespace)
    killed_at = datetime.now(UTC)
    tools.kubectl("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=true", timeout=120)
    assert len(stored(object_store)) == BURST, "every answer's trace is in the store once the pod is gone"
    assert newest_write(object_store) >= killed_at.replace(microsecond=0), "the flush on SIGTERM wrote some"

    # 2. The store down (killed) while the new router pod answers; then back.
    installing.wait_fleet_ready(tools, namespace, 300, name=FLEET)
    object_store.kill()
    try:
        latencies = burst(tools, namespace, "outage")
        time.sleep(12)  # the segment is sealed (10 s) and its upload fails, then is retried with backoff
    finally:
        object_store.start()
    wait_until(lambda: len(stored(object_store)) >= 2 * BURST or None, 120, "the spooled traces uploaded",
               interval=2)  # fmt: skip
    lines = stored(object_store)
    assert len(lines) == 2 * BURST
    assert sorted(latencies)[BURST // 2] < 1.0, latencies  # the request path never waits on the store
    asked = {line["messages"][0]["content"] for line in lines}
    assert asked == {f"{label} request {n}: say hi" for label in ("before", "outage") for n in range(BURST)}
