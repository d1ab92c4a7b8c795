"""A real Prometheus (built from source by `e2e/cluster build`) for the observability tests.

`scrape_config` turns the chart's ServiceMonitors and PodMonitor into Prometheus scrape configs the way
prometheus-operator does (its EndpointSlice discovery role): Kubernetes service discovery against the
local apiserver, kept by the monitor's label selector and port name, with the operator's target labels
(namespace, service, pod, job, endpoint) and the monitor's own relabelings. So a wrong selector, port name
or relabeling in the chart shows up here as a missing target or a missing label.

The one test-only addition: the routers and the operator run on loopback, published in EndpointSlices
under host names (the apiserver refuses loopback IPs), so a last relabeling maps `<name>.flotilla.test:<port>`
to `127.0.0.1:<port>`, as the operator's FLOTILLA_AUTOSCALER_HOST_ALIASES does for its own scrapes.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port

from clusterlib import settings

HOST_SUFFIX = r"[a-z0-9-]+\.flotilla\.test"
"""Host names of loopback processes in the tests' EndpointSlices."""


def binary(name: str = "prometheus") -> Path:
    """The pinned prometheus or promtool; a clear failure (not a skip) when not built yet."""
    path = settings.load().binary(name)
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only prometheus` first")
    return path


def _sanitize(label: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _keep_labels(kind: str, match: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_{kind}_label_{_sanitize(k)}",
                f"__meta_kubernetes_{kind}_labelpresent_{_sanitize(k)}",
            ],
            "regex": f"({re.escape(v)});true",
        }
        for k, v in sorted(match.items())
    ]


def _relabelings(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """prometheus-operator's camelCase relabelings as Prometheus's snake_case relabel_configs."""
    renamed = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{renamed.get(k, k.lower()): v for k, v in item.items()} for item in items]


def _namespaces(selector: Mapping[str, Any]) -> dict[str, Any]:
    return {} if selector.get("any") else {"namespaces": {"names": list(selector.get("matchNames") or [])}}


def scrape_config(monitor: Mapping[str, Any], kubeconfig: Path, interval: str = "1s") -> dict[str, Any]:
    """One scrape config for a ServiceMonitor or PodMonitor with one endpoint (the chart's have one)."""
    kind, meta, spec = monitor["kind"], monitor["metadata"], monitor["spec"]
    pod = kind == "PodMonitor"
    (endpoint,) = spec["podMetricsEndpoints" if pod else "endpoints"]
    sd = {"role": "pod" if pod else "endpointslice", "kubeconfig_file": str(kubeconfig)}
    sd |= _namespaces(spec.get("namespaceSelector") or {"matchNames": [meta["namespace"]]})
    port = endpoint["port"]
    relabel = _keep_labels("pod" if pod else "service", spec["selector"]["matchLabels"])
    port_label = (
        "__meta_kubernetes_pod_container_port_name" if pod else "__meta_kubernetes_endpointslice_port_name"
    )
    relabel.append({"action": "keep", "source_labels": [port_label], "regex": port})
    relabel += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    if pod:
        relabel.append({"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"})
    else:
        relabel += [
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        ]
    relabel.append({"target_label": "endpoint", "replacement": port})
    relabel += _relabelings(endpoint.get("relabelings") or [])
    relabel.append({
        "source_labels": ["__address__"], "regex": f"{HOST_SUFFIX}:(\\d+)", "target_label": "__address__",
        "replacement": "127.0.0.1:$1",
    })  # fmt: skip
    return {
        "job_name": f"{kind.lower()}/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "kubernetes_sd_configs": [sd],
        "relabel_configs": relabel,
    }


class Prometheus:
    """`prometheus` on a free loopback port with its own TSDB; queried through its HTTP API."""

    def __init__(self, scrape_configs: list[dict[str, Any]], rule_files: Sequence[Path], tmp: Path) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config_path = tmp / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
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
