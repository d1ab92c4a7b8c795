"""Scale from zero on the real node (issue 6): with the Gemma model at zero replicas, a request is held by
the router and answered by the real pod once the autoscaler (in the helm-installed operator) has started
it; with a cold-start budget shorter than the pod's start-up, the request is answered by the fallback with
reason `cold`, and the model still comes up for the next ones; idle again, it parks at zero.

Two small fleets derived from examples/03-local (the Gemma model only, min 0), beside the demo fleet.
"""

from __future__ import annotations

import functools
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from clusterlib.waiting import wait_until
from demolib import asking, fleets, installing
from demolib.forwarding import port_forward
from demolib.installing import Target
from demolib.tools import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

BANNER = "[flotilla stand-in provider]"
SCALE_DOWN_DELAY = "20s"


def cold_fleet(name: str, budget: str) -> dict[str, Any]:
    example = yaml.safe_load((installing.EXAMPLE / "fleet.yaml").read_text())
    return fleets.cold_fleet(example, name, budget, SCALE_DOWN_DELAY)


@pytest.fixture(scope="module")
def cold_routers(installed: Target, tools: Tools) -> Iterator[dict[str, str]]:
    """Fleet `hold` (budget 300 s) and fleet `spill` (budget 1 s), Ready with the model parked at zero; their
    routers' URLs through port-forward."""
    budgets = {"hold": "300s", "spill": "1s"}
    for name, budget in budgets.items():
        tools.apply(installed.namespace, cold_fleet(name, budget))
    try:
        for name in budgets:
            installing.wait_fleet_ready(tools, installed.namespace, 300, name=name)
            parked = functools.partial(fleets.parked_at_zero, tools, installed.namespace, name)
            wait_until(parked, 90, f"{name}'s model at zero")
        with (
            port_forward(tools, installed.namespace, "svc/hold-router", 8080) as hold,
            port_forward(tools, installed.namespace, "svc/spill-router", 8080) as spill,
            port_forward(tools, installed.namespace, "svc/hold-router-admin", 9090) as hold_admin,
        ):  # the admin Service serves /metrics (the API port does not)
            yield {
                "hold": f"http://127.0.0.1:{hold}",
                "spill": f"http://127.0.0.1:{spill}",
                "hold-admin": f"http://127.0.0.1:{hold_admin}",
            }
    finally:
        for name in budgets:
            tools.kubectl("delete", "modelfleet", name, "-n", installed.namespace, "--ignore-not-found")
        # Garbage collection removes their pods in the background: wait, so that the scenarios after these
        # see only the demo fleet's pods.
        selector = f"flotilla.dev/fleet in ({','.join(budgets)})"
        wait_until(lambda: not installing.pods_of(tools, installed.namespace, selector), 180,
                   "the cold fleets' pods garbage-collected", interval=2)  # fmt: skip


def _router_metric(url: str, name: str, **labels: str) -> float:
    """One sample of the router's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_request_at_zero_is_held_and_answered_by_the_real_pod(
    installed: Target, tools: Tools, cold_routers: dict[str, str]
) -> None:
    url = cold_routers["hold"]
    assert fleets.ready_replicas(tools, installed.namespace, "hold") == 0
    answer = asking.chat(url, "Hello! Who are you?", max_tokens=16, timeout=400)
    assert answer.status == 200, answer.body
    assert answer.model == "pocket" and not answer.reason.startswith("fallback"), answer.headers
    assert answer.text.strip() and BANNER not in answer.text
    assert answer.seconds > 2  # it waited for a pod to start
    assert fleets.ready_replicas(tools, installed.namespace, "hold") == 1
    assert _router_metric(cold_routers["hold-admin"], "flotilla_router_queued", model="pocket") == 0
    selector = "involvedObject.kind=ModelFleet,involvedObject.name=hold"
    events = tools.get_json("events", "-n", installed.namespace, f"--field-selector={selector}")["items"]
    messages = [f"{e['reason']}: {e['message']}" for e in events]
    assert any("model pocket: 0 -> 1 replicas" in m for m in messages), messages


def test_a_short_budget_spills_with_reason_cold_and_the_model_still_comes_up(
    installed: Target, tools: Tools, cold_routers: dict[str, str]
) -> None:
    url = cold_routers["spill"]
    assert fleets.parked_at_zero(tools, installed.namespace, "spill")
    answer = asking.chat(url, "Hello! Who are you?", max_tokens=16)
    assert answer.status == 200, answer.body
    assert (answer.model, answer.reason) == ("frontier", "fallback:cold")
    assert answer.text.startswith(BANNER)
    assert answer.seconds < 10  # the 1 s budget, then the stand-in
    wait_until(lambda: fleets.ready_replicas(tools, installed.namespace, "spill") == 1, 300,
               "the spilled model to come up anyway", interval=1)  # fmt: skip
    warm = asking.chat(url, "Hello again!", max_tokens=8)
    assert (warm.status, warm.model) == (200, "pocket")


def test_an_idle_model_parks_at_zero_again(
    installed: Target, tools: Tools, cold_routers: dict[str, str]
) -> None:
    del cold_routers  # the fleets, warmed by the tests above
    for name in ("hold", "spill"):
        wait_until(lambda n=name: fleets.parked_at_zero(tools, installed.namespace, n), 240,
                   f"{name}'s model back at zero after {SCALE_DOWN_DELAY} idle", interval=2)  # fmt: skip
