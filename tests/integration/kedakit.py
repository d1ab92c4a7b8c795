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

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port

from clusterlib import settings


def binary() -> Path:
    """The pinned keda-operator; a clear failure (not a skip) when not built yet."""
    path = settings.load().binary("keda-operator")
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only keda` first")
    return path


def self_signed(directory: Path) -> Path:
    """ca.crt, tls.crt and tls.key (one self-signed P-256 certificate for localhost) in `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise AssertionError("`openssl` is not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copyfile(directory / "tls.crt", directory / "ca.crt")
    return directory


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


EXTERNAL_METRICS_API = "v1beta1.external.metrics.k8s.io"
ADAPTER_SERVICE = "keda-metrics-apiserver"


def host_ip() -> str:
    """This machine's first global IPv4 address: the apiserver's aggregator refuses loopback endpoints."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    addresses = [listed[i + 1].split("/")[0] for i, word in enumerate(listed[:-1]) if word == "inet"]
    if not addresses:
        raise AssertionError("no global IPv4 address: KEDA's metrics apiserver needs a non-loopback one")
    return addresses[0]


class KedaMetricsServer:
    """`keda-adapter` (KEDA's metrics apiserver) on the host's IP, registered as the external metrics API.

    The kube-apiserver's aggregation layer (`--enable-aggregator-routing`, set by e2e/cluster) proxies
    `external.metrics.k8s.io` to the endpoints of a selector-less Service in the test's namespace, which
    hold the host's IP. Test-only: the cluster has no front-proxy CA, so the aggregator's requests reach
    the adapter as `system:anonymous`: the adapter lets discovery (/apis/*) through, and a Role in the
    test's namespace lets anonymous read its external metrics (the adapter asks the apiserver, as in a real
    install, but for the wrong user). The APIService skips TLS verification of the self-signed serving
    certificate. It asks the operator's gRPC
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
            "--authorization-always-allow-paths=/apis,/apis/*,/openapi/*,/healthz,/readyz,/livez",
            f"--port={free_port()}",
        ]
        env = {
            "KUBECONFIG": str(kubeconfig),
            "WATCH_NAMESPACE": namespace,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": namespace,
            "POD_NAMESPACE": namespace,
        }
        self.proc = Proc("keda-adapter", argv, tmp, env)

    def register_docs(self) -> list[dict[str, object]]:
        """The Service, its EndpointSlice and Endpoints (the host's IP) and the APIService."""
        meta = {"name": ADAPTER_SERVICE, "namespace": self.namespace}
        port = {"name": "https", "port": self.port, "protocol": "TCP"}
        return [
            {"apiVersion": "v1", "kind": "Service", "metadata": meta,
             "spec": {"ports": [{**port, "targetPort": self.port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{ADAPTER_SERVICE}-host", "namespace": self.namespace,
                          "labels": {"kubernetes.io/service-name": ADAPTER_SERVICE,
                                     "endpointslice.kubernetes.io/managed-by": "flotilla-tests"}},
             "addressType": "IPv4", "ports": [port],
             "endpoints": [{"addresses": [self.ip], "conditions": {"ready": True}}]},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
             "subsets": [{"addresses": [{"ip": self.ip}], "ports": [port]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
             "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"],
                        "verbs": ["get", "list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ADAPTER_SERVICE},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                           "name": "system:anonymous"}]},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": EXTERNAL_METRICS_API},
             "spec": {"service": {"name": ADAPTER_SERVICE, "namespace": self.namespace, "port": self.port},
                      "group": "external.metrics.k8s.io", "version": "v1beta1",
                      "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100, "versionPriority": 100}},
        ]  # fmt: skip

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> None:
        self.proc.stop()
