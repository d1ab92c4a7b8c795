"""The chart's ServiceMonitors and PodMonitor as plain Prometheus configuration (pure, stdlib only).

`scrape_config` translates one monitor the way prometheus-operator does (its EndpointSlice discovery role
for ServiceMonitors, the pod role for PodMonitors): Kubernetes service discovery against the apiserver,
kept by the monitor's label selector and port name, with the operator's target labels (namespace, service,
pod, job, endpoint) and the monitor's own relabelings. So a wrong selector, port name or relabeling in the
chart shows up as a missing target or a missing label. `e2e/cluster up --with prometheus` and the
observability tests (tests/integration/promkit.py) both use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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


def scrape_config(
    monitor: Mapping[str, Any],
    kubeconfig: Path,
    interval: str | None = None,
    extra_relabelings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One scrape config for a ServiceMonitor or PodMonitor with one endpoint (the chart's have one).

    `interval` overrides the monitor's (the tests scrape every second); `extra_relabelings` are appended
    after the monitor's own (the tests map loopback processes into place with them).
    """
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
    relabel += [dict(item) for item in extra_relabelings]
    every = interval or endpoint.get("interval") or "30s"
    return {
        "job_name": f"{kind.lower()}/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": every,
        "scrape_timeout": interval or endpoint.get("scrapeTimeout") or every,
        "kubernetes_sd_configs": [sd],
        "relabel_configs": relabel,
    }


def config(
    scrape_configs: Sequence[Mapping[str, Any]], rule_files: Sequence[Path], interval: str = "1s"
) -> dict[str, Any]:
    """A whole prometheus.yml; written as JSON (YAML's subset), so no YAML library is needed."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": list(scrape_configs),
    }
