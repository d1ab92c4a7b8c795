"""prometheus-adapter (built from source by `e2e/cluster build`) as a process: the custom metrics API that
a `mode: hpa` model's HorizontalPodAutoscaler reads.

Its rules are the one documented in docs/autoscaling.md ("the Prometheus adapter rule"), read from the doc
itself, so the doc cannot drift from what the test runs. It listens on the host's IP and is registered as
`v1beta1.custom.metrics.k8s.io` through the aggregation layer (aggregationkit, with what is test-only
about that), and reads the pods it serves metrics for from the apiserver with the admin kubeconfig.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import aggregationkit
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port

from clusterlib import settings

AUTOSCALING_DOC = Path(__file__).resolve().parents[2] / "docs" / "autoscaling.md"
CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io"
SERVICE = "prometheus-adapter"


def documented_rules(doc: Path = AUTOSCALING_DOC) -> list[dict[str, Any]]:
    """The `rules.custom` list of the YAML block under the doc's "the Prometheus adapter rule" heading
    (values of the prometheus-community chart; the adapter's own config file takes the same list as
    `rules:`)."""
    text = doc.read_text()
    section = text.split("## `hpa`: the Prometheus adapter rule", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    if block is None:
        raise AssertionError(f"{doc}: no ```yaml block under 'the Prometheus adapter rule'")
    rules: list[dict[str, Any]] = yaml.safe_load(block.group(1))["rules"]["custom"]
    return rules


def binary() -> Path:
    """The pinned prometheus-adapter; a clear failure (not a skip) when not built yet."""
    return settings.load().built("prometheus-adapter", "prometheus-adapter")


class PrometheusAdapter:
    """`prometheus-adapter` on the host's IP, asking `prometheus_url`; relists series every second (the
    default, 10 minutes, would not see a model pod's series appear during a test)."""

    def __init__(self, prometheus_url: str, kubeconfig: Path, namespace: str, tmp: Path) -> None:
        self.namespace = namespace
        self.ip, self.port = aggregationkit.host_ip(), free_port()
        certs = aggregationkit.self_signed(tmp / "adapter-certs")
        config = tmp / "adapter-rules.yaml"
        config.write_text(yaml.safe_dump({"rules": documented_rules()}, sort_keys=False))
        argv = [
            str(binary()),
            f"--prometheus-url={prometheus_url}",
            f"--config={config}",
            "--metrics-relist-interval=1s",
            "--metrics-max-age=5m",
            f"--secure-port={self.port}",
            f"--bind-address={self.ip}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup=true",
            aggregationkit.ALWAYS_ALLOW,
        ]
        self.proc = Proc("prometheus-adapter", argv, tmp)

    def register_docs(self) -> list[dict[str, Any]]:
        """What registers it as the custom metrics API (aggregationkit.register)."""
        return aggregationkit.register_docs(SERVICE, self.namespace, self.ip, self.port, CUSTOM_METRICS_GROUP)

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> None:
        self.proc.stop()
