"""KEDA's real operator (built from source by `e2e/cluster build`) as a process on loopback.

It runs out of cluster the way KEDA's own `make run` does: the kubeconfig instead of a ServiceAccount,
WATCH_NAMESPACE and KEDA_CLUSTER_OBJECT_NAMESPACE set to the test's namespace (so it touches nothing
else on the shared cluster), every listener on a free loopback port. Its gRPC metrics service (what KEDA's
metrics apiserver would call) needs a TLS certificate even with nobody calling it: a self-signed one is
made with `openssl`. The metrics apiserver itself does not run (see docs/observability.md), so the HPA
KEDA creates reads no metrics; KEDA's own 0 <-> 1 activation needs none.
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
        self.probe_port = free_port()
        argv = [
            str(binary()),
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-service-bind-address=127.0.0.1:{free_port()}",
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
