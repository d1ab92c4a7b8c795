"""Helpers for driving the real cluster and a real `flotilla operator` process (tests and
bench/operator_bench.py).

Everything goes through kubectl or Flotilla's own API client against the cluster in $KUBECONFIG; nothing
is mocked. The operator runs as a separate process, exactly as a person would start it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flotilla.api import fleet as fleet_api
from flotilla.reconcile import desiring, kube, planning

ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = ROOT / "examples" / "rbac" / "operator.yaml"
OPERATOR_SA = ("flotilla-system", "flotilla-operator")
T = TypeVar("T")


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True, env: Mapping[str, str] | None = None
) -> str:
    """Run kubectl against $KUBECONFIG; on failure (when ``check``) raise with its stderr."""
    done = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120,
        env=dict(env) if env is not None else None,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout if done.returncode == 0 else done.stderr


@contextmanager
def scratch_namespace(prefix: str) -> Iterator[str]:
    """A new namespace ``<prefix>-<random>``, deleted (with everything in it, without waiting) afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl_try(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run kubectl and return the completed process whatever the outcome (for rejection tests)."""
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120)


def get_json(*args: str) -> Any:
    """``kubectl get ... -o json`` decoded."""
    return json.loads(kubectl("get", *args, "-o", "json"))


def replicas_owners(namespace: str, deployment: str) -> set[str]:
    """Field managers owning a Deployment's spec.replicas (server-side apply bookkeeping)."""
    body = get_json("deployment", deployment, "-n", namespace, "--show-managed-fields")
    return {
        m["manager"]
        for m in body["metadata"].get("managedFields", [])
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_crds() -> None:
    """Apply the generated CRDs (`flotilla crds | kubectl apply -f -`) and wait until they are served."""
    crds = subprocess.run([_flotilla(), "crds"], capture_output=True, text=True, check=True).stdout
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
    # Retried: on a fresh apiserver `kubectl wait` fails at once while the new CRD has no conditions yet
    # (".status.conditions accessor error: <nil>").
    established = ("wait", "--for=condition=Established", f"crd/{fleet_api.PLURAL}.{fleet_api.GROUP}")
    wait_until(lambda: kubectl_try(*established, "--timeout=10s").returncode == 0, 60, "the CRD Established")


KEDA_SCALED_OBJECTS = "scaledobjects.keda.sh"
KEDA_TEST_LABEL = {"flotilla.dev/test": "keda-crds"}


@contextmanager
def keda_crds() -> Iterator[None]:
    """KEDA's own CRDs (from its Go module, fetched by `e2e/cluster build`) installed for the duration, then
    deleted. Fails, rather than touch them, if a KEDA is already installed on the cluster."""
    sys.path.insert(0, str(ROOT / "e2e"))
    from clusterlib import settings

    folder = settings.load().keda_crds_dir
    if not (folder / "keda.sh_scaledobjects.yaml").exists():
        raise AssertionError(f"{folder} has no KEDA CRDs: run `e2e/cluster build --only keda-crds` first")
    if kubectl_try("get", "crd", KEDA_SCALED_OBJECTS).returncode == 0:
        raise AssertionError(f"{KEDA_SCALED_OBJECTS} already exists on this cluster (a real KEDA?)")
    names = []
    for path in sorted(folder.glob("*.yaml")):  # keda.sh and eventing.keda.sh: KEDA's operator watches both
        crd = yaml.safe_load(path.read_text())
        crd["metadata"].setdefault("labels", {}).update(KEDA_TEST_LABEL)
        kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(crd))
        names.append(crd["metadata"]["name"])
    kubectl("wait", "--for=condition=Established", *[f"crd/{n}" for n in names], "--timeout=60s")
    try:
        yield
    finally:
        # waited for: a test after this one may need KEDA absent (no CRD still terminating)
        kubectl("delete", "crd", *names, "--timeout=90s", check=False)


def service_account_kubeconfig(directory: Path) -> Path:
    """Install the operator's RBAC and write a kubeconfig that authenticates as its ServiceAccount.

    The operator then runs with exactly the permissions its manifest grants, so every test also checks
    that least-privilege RBAC is enough.
    """
    kubectl("apply", "-f", str(RBAC_MANIFEST))
    return token_kubeconfig(directory, *OPERATOR_SA)


def token_kubeconfig(directory: Path, namespace: str, name: str) -> Path:
    """A kubeconfig that authenticates as ServiceAccount `namespace/name` (a fresh token) on this cluster."""
    token = kubectl("create", "token", name, "-n", namespace, "--duration=4h").strip()
    config = yaml.safe_load(kubectl("config", "view", "--raw", "--minify", "--flatten"))
    cluster = config["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:  # inline it so the file stands alone
        ca = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    sa_config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
        "current-context": name,
    }
    path = directory / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(sa_config))
    path.chmod(0o600)
    return path


def _flotilla() -> str:
    return str(Path(sys.executable).with_name("flotilla"))


class OperatorProcess:
    """`flotilla operator` as a child process with its own log file; restartable."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        args: Iterable[str] = ("--all-namespaces",),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.args = list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until kopf's liveness endpoint answers (handlers and indexes are running)."""
        self.starts += 1
        self.port = free_port()
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        liveness = f"http://127.0.0.1:{self.port}/healthz"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [_flotilla(), "operator", *self.args, "--liveness", liveness],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        wait_until(self._live, timeout, f"the operator's liveness endpoint (log {self.log_path})")

    def _live(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator exited early; log:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like an OOM kill or a node loss."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait for kopf's graceful exit (SIGKILL after 20 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """Resident memory of the operator process now (VmRSS), or its peak with ``field="VmHWM"``."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0

    def log(self, start: int | None = None) -> str:
        """The log of one start (default: the current one)."""
        path = self.log_dir / f"operator-{start or self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""


BENIGN = ("storage is (re)initializing",)
"""Logged at ERROR by kopf while retrying, but expected: a CRD installed moments before the operator."""


def log_errors(log: str) -> list[str]:
    """Lines of an operator log that report an error (tracebacks, ERROR/CRITICAL lines), benign ones aside."""
    return [
        line
        for line in log.splitlines()
        if ("Traceback" in line or "[ERROR" in line or "[CRITICAL" in line)
        and not any(b in line for b in BENIGN)
    ]


def children(namespace: str, fleet: str) -> list[dict[str, Any]]:
    """Every child of a fleet that exists now, through Flotilla's client (one list per kind)."""
    client = kube.Kube.connect()
    try:
        return [
            item
            for kind in kube.CHILD_KINDS
            for item in client.list(kind, namespace, planning.fleet_selector(fleet))
        ]
    finally:
        client.close()


def expected_keys(doc: Mapping[str, Any]) -> set[planning.ChildKey]:
    """The children a fleet document should produce, from the renderer itself."""
    return {planning.child_key(m) for m in desiring.desired_children(doc)}


def fleet_doc(path: Path, namespace: str, name: str | None = None) -> dict[str, Any]:
    """The first ModelFleet document of an example file, placed into ``namespace`` (and renamed)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == fleet_api.KIND:
            doc["metadata"]["namespace"] = namespace
            if name:
                doc["metadata"]["name"] = name
            return dict(doc)
    raise AssertionError(f"{path} has no {fleet_api.KIND}")


def apply_doc(doc: Mapping[str, Any]) -> str:
    """kubectl apply one document; returns kubectl's output."""
    return kubectl("apply", "-f", "-", stdin=json.dumps(doc))


def condition(fleet: Mapping[str, Any], kind: str) -> str | None:
    """The status ("True"/"False") of one condition of a fleet body."""
    for cond in (fleet.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def temp_dir(prefix: str) -> Path:
    """A fresh directory for logs and kubeconfigs."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def gpu_fleet(
    namespace: str, name: str, replicas: Mapping[str, int], autoscaling: Mapping[str, Any]
) -> dict[str, Any]:
    """A fleet of one vLLM model `coder` needing one GPU (scheduled on the kwok GPU node)."""
    model = {
        "name": "coder",
        "source": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
        "runtime": "vllm",
        "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
        "replicas": dict(replicas),
        "autoscaling": dict(autoscaling),
    }
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"models": [model]},
    }
