"""KEDA's real operator and metrics apiserver (built from source by `e2e/cluster build`) as processes.

The operator runs out of cluster the way KEDA's own `make run` does: the kubeconfig instead of a
ServiceAccount, WATCH_NAMESPACE and KEDA_CLUSTER_OBJECT_NAMESPACE set to the test's namespace (so it
touches nothing else on the shared cluster), every listener on a free loopback port. Its gRPC metrics
service, which the metrics apiserver calls with mutual TLS, uses a self-signed certificate made with
`openssl` (the metrics apiserver presents the same one). The metrics apiserver (`keda-adapter`) serves
`external.metrics.k8s.io` through the kube-apiserver's aggregation layer, so the HPA KEDA creates can
scale past one replica; KEDA's own 0 <-> 1 activation needs neither.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aggregationkit
from aggregationkit import host_ip, self_signed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port

from clusterlib import settings


def binary() -> Path:
    """The pinned keda-operator; a clear failure (not a skip) when not built yet."""
    return settings.load().built("keda-operator", "keda")


class KedaOperator:
    """`keda-operator` watching one namespace, with the admin kubeconfig; ready when /readyz says so."""

    def __init__(self, kubeconfig: Path, namespace: str, tmp: Path) -> None:
        certs = self_signed(tmp / "keda-certs")
        (tmp / "keda-ca").mkdir(exist_ok=True)
        self.probe_port, self.grpc_port = free_port(), free_port()
        argv = [
            str(binary()),
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
            f"--cert-dir={certs}",
            f"--ca-dir={tmp / 'keda-ca'}",
            "--zap-log-level=info",
        ]
        env = {
            "KUBECONFIG": str(kubeconfig),
            "WATCH_NAMESPACE": namespace,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": namespace,
            "POD_NAMESPACE": namespace,
            "POD_NAME": "keda-operator-test",
            "OPERATOR_NAME": "keda-operator",
        }
        self.proc = Proc("keda-operator", argv, tmp, env)
        self.proc.wait_http(f"http://127.0.0.1:{self.probe_port}/readyz", 120)

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> None:
        self.proc.stop()


EXTERNAL_METRICS_GROUP = "external.metrics.k8s.io"
ADAPTER_SERVICE = "keda-metrics-apiserver"


class KedaMetricsServer:
    """`keda-adapter` (KEDA's metrics apiserver) on the host's IP, registered as the external metrics API.

    The kube-apiserver's aggregation layer (`--enable-aggregator-routing`, set by e2e/cluster) proxies
    `external.metrics.k8s.io` to the endpoints of a selector-less Service in the test's namespace, which
    hold the host's IP (aggregationkit, with what is test-only about it). It asks the operator's gRPC
    metrics service (mutual TLS with the operator's certificate) for each metric value, as in a real
    install.
    """

    def __init__(self, keda: KedaOperator, kubeconfig: Path, namespace: str, tmp: Path) -> None:
        path = settings.load().binary("keda-adapter")
        if not path.exists():
            raise AssertionError(f"{path} is missing: run `e2e/cluster build --only keda` first")
        self.namespace = namespace
        self.ip, self.port = host_ip(), free_port()
        certs = tmp / "keda-certs"
        argv = [
            str(path),
            f"--secure-port={self.port}",
            f"--bind-address={self.ip}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--metrics-service-address=127.0.0.1:{keda.grpc_port}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup=true",
            aggregationkit.ALWAYS_ALLOW,
            f"--port={free_port()}",
        ]
        env = {
            "KUBECONFIG": str(kubeconfig),
            "WATCH_NAMESPACE": namespace,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": namespace,
            "POD_NAMESPACE": namespace,
        }
        self.proc = Proc("keda-adapter", argv, tmp, env)

    def register_docs(self) -> list[dict[str, Any]]:
        """What registers it as the external metrics API (aggregationkit.register)."""
        return aggregationkit.register_docs(
            ADAPTER_SERVICE, self.namespace, self.ip, self.port, EXTERNAL_METRICS_GROUP
        )

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> None:
        self.proc.stop()
