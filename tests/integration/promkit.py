"""A real Prometheus (built from source by `e2e/cluster build`) for the observability tests.

`scrape_config` turns the chart's ServiceMonitors and PodMonitor into Prometheus scrape configs the way
prometheus-operator does (clusterlib.scraping, shared with `e2e/cluster up --with prometheus`): Kubernetes
service discovery against the local apiserver, the monitors' selectors, port names and relabelings.

Test-only additions, both last relabelings, because kwok pods run no process:
- the routers and the operator run on loopback, published in EndpointSlices under host names (the
  apiserver refuses loopback IPs): `<name>.flotilla.test:<port>` is mapped to `127.0.0.1:<port>`, as the
  operator's FLOTILLA_AUTOSCALER_HOST_ALIASES does for its own scrapes;
- a `ModelServer` (e.g. llamakit.LlamaServer) plays one fleet model's pods: the PodMonitor's targets of
  that model's pods, found through the apiserver, are scraped at `127.0.0.1:<its port>`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port

from clusterlib import scraping, settings

HOST_SUFFIX = r"[a-z0-9-]+\.flotilla\.test"
"""Host names of loopback processes in the tests' EndpointSlices."""


def binary(name: str = "prometheus") -> Path:
    """The pinned prometheus or promtool; a clear failure (not a skip) when not built yet."""
    return settings.load().built(name, "prometheus")


@dataclass(frozen=True)
class ModelServer:
    """A real model server on loopback playing the (kwok) pods of one fleet model for Prometheus."""

    namespace: str
    fleet: str
    model: str
    port: int

    def relabeling(self) -> dict[str, Any]:
        """Sends the PodMonitor's targets of this model's pods to 127.0.0.1:`port`. Test-only: kwok pods
        run no process, so the server runs beside the test; discovery (selector, port name, the `fleet`,
        `model`, `runtime` and `pod` labels) is still the chart's, against the apiserver."""
        return {
            "source_labels": [
                "__meta_kubernetes_namespace",
                "__meta_kubernetes_pod_label_flotilla_dev_fleet",
                "__meta_kubernetes_pod_label_flotilla_dev_model",
            ],
            "regex": re.escape(f"{self.namespace};{self.fleet};{self.model}"),
            "target_label": "__address__",
            "replacement": f"127.0.0.1:{self.port}",
        }


LOOPBACK_HOSTS = {
    "source_labels": ["__address__"], "regex": f"{HOST_SUFFIX}:(\\d+)", "target_label": "__address__",
    "replacement": "127.0.0.1:$1",
}  # fmt: skip
"""Maps the EndpointSlices' `<name>.flotilla.test:<port>` to the loopback process behind it."""


def scrape_config(
    monitor: Mapping[str, Any],
    kubeconfig: Path,
    interval: str = "1s",
    model_servers: Sequence[ModelServer] = (),
) -> dict[str, Any]:
    """The monitor's scrape config (clusterlib.scraping), every `interval`, plus the tests' loopback
    mappings: `*.flotilla.test` hosts, and for the PodMonitor each of `model_servers`."""
    extra = [LOOPBACK_HOSTS]
    if monitor["kind"] == "PodMonitor":
        extra += [server.relabeling() for server in model_servers]
    return scraping.scrape_config(monitor, kubeconfig, interval, extra)


class Prometheus:
    """`prometheus` on a free loopback port with its own TSDB; queried through its HTTP API."""

    def __init__(self, scrape_configs: list[dict[str, Any]], rule_files: Sequence[Path], tmp: Path) -> None:
        self.config_path = tmp / "prometheus.yml"
        self.config_path.write_text(json.dumps(scraping.config(scrape_configs, rule_files), indent=1))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            str(binary()),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc = Proc("prometheus", argv, tmp)
        self.proc.wait_http(f"{self.url}/-/ready", 60)

    def stop(self) -> None:
        self.proc.stop()

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"/api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now."""
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "vector":
            return list(result)
        return [{"metric": {}, "value": result}]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def wait_loopback_targets(self, job_prefix: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The `count` loopback targets (the test's processes) of the jobs starting with `job_prefix`, once
        all are up. Targets at kwok pod IPs are discovered too, and stay down: kwok pods run no process."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = [
                t for t in self.targets()
                if t["scrapePool"].startswith(job_prefix) and t["scrapeUrl"].startswith("http://127.0.0.1:")
            ]  # fmt: skip
            if len(found) == count and all(t["health"] == "up" for t in found):
                return found
            time.sleep(0.5)
        summary = [(t["scrapePool"], t["scrapeUrl"], t["health"], t.get("lastError")) for t in found]
        raise AssertionError(f"expected {count} healthy loopback targets in {job_prefix}*, got {summary}")
