"""``flotilla operator --metrics URL`` on the real local cluster: Prometheus text over real HTTP.

The operator process serves prometheus_client's default registry; the built-in autoscaler's gauges for a
fleet it autoscales appear with that fleet's labels, next to the process collector's memory and CPU.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import operatorkit as ok
import pytest

pytestmark = pytest.mark.cluster


@pytest.fixture
def metered_operator(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[tuple[ok.OperatorProcess, str]]:
    """``flotilla operator -n <ns> --metrics http://127.0.0.1:<port>/metrics``, short autoscaler ticks."""
    url = f"http://127.0.0.1:{ok.free_port()}/metrics"
    process = ok.OperatorProcess(
        operator_kubeconfig, tmp_path, args=("--namespace", namespace, "--metrics", url),
        env={"FLOTILLA_AUTOSCALER_INTERVAL": "0.5", "FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": "1"},
    )  # fmt: skip
    process.start()
    yield process, url
    process.stop()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` whose labels include ``labels``, or None."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None


def test_metrics_endpoint_serves_process_and_autoscaler_metrics(
    metered_operator: tuple[ok.OperatorProcess, str], namespace: str
) -> None:
    operator, url = metered_operator
    text = scrape(url)
    rss = sample(text, "process_resident_memory_bytes")
    assert rss is not None and rss > 10 * 2**20, "the process collector reports the operator's memory"
    for family in ("desired_replicas", "actual_replicas", "load", "scale_events"):
        assert f"# TYPE flotilla_autoscaler_{family}" in text

    ok.apply_doc(ok.gpu_fleet(namespace, "metered", {"min": 2, "max": 3}, {"mode": "builtin"}))
    labels = {"namespace": namespace, "fleet": "metered", "model": "coder"}

    def gauges() -> tuple[float | None, float | None] | None:
        text = scrape(url)
        found = tuple(
            sample(text, f"flotilla_autoscaler_{g}_replicas", **labels) for g in ("desired", "actual")
        )
        return found if found == (2, 2) else None

    # no load observed (kwok routers never answer), so the minimum, which the autoscaler scales up to
    ok.wait_until(gauges, 60, "desired and actual replicas gauges of 2 for the fleet's model")
    assert not ok.log_errors(operator.log())
