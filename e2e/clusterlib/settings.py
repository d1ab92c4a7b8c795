"""Where things live and which versions are pinned.

The pins are read from the throwaway Go modules under `e2e/gomod/` so that the go.mod files stay the one
source of truth: bumping a version there moves the binaries to a new cache folder and `build` rebuilds.
Environment variables are read only in `load()`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent.parent
GOMOD_DIR = E2E_DIR / "gomod"

# The Kubernetes control-plane binaries built from k8s.io/kubernetes, and the node binaries built from the
# same module only for the opt-in real node (kwok stands in for kubelets otherwise).
CONTROL_PLANE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_COMMANDS = ("kubelet", "kube-proxy")
KUBE_COMMANDS = CONTROL_PLANE_COMMANDS + NODE_COMMANDS
PROMETHEUS_COMMANDS = ("prometheus", "promtool")
KEDA_COMMANDS = ("keda-operator", "keda-adapter")
PROMETHEUS_ADAPTER_COMMANDS = ("prometheus-adapter",)


class ClusterError(Exception):
    """A failure the user can act on; the CLI prints it as one message and exits 1 (no traceback)."""


@dataclass(frozen=True)
class Pins:
    """Versions pinned by the go.mod files in e2e/gomod/."""

    kubernetes: str  # e.g. v1.36.3
    etcd: str  # e.g. v3.6.16
    kwok: str  # e.g. v0.8.0
    helm: str  # e.g. v3.22.0
    helm_client_go: str  # client-go version helm was built against; helm reports it as its k8s version
    coredns: str  # e.g. v1.14.7 (only for the real node's cluster DNS)
    prometheus: str  # Go module version, e.g. v0.316.0 (Prometheus 3.16.0; for the observability tests)
    keda: str  # e.g. v2.20.2: its CRDs and its operator (built from the module's own source)
    prometheus_adapter: str  # e.g. v0.12.0: the custom-metrics API the hpa scaling test's HPA reads
    seaweedfs: str  # a pseudo-version: the capture tests' S3 store (built from the module's own source)
    kuberay: str  # e.g. v1.5.0: only its RayService CRD (nothing built)


@dataclass(frozen=True)
class Settings:
    """Paths for one invocation. `state_dir` holds one running cluster (data, logs, PIDs, kubeconfig)."""

    cache_dir: Path
    state_dir: Path
    pins: Pins

    def tool_dir(self, tool: str) -> Path:
        """Cache folder of one pinned tool, e.g. ~/.cache/flotilla/k8s-v1.36.3."""
        version = {
            "k8s": self.pins.kubernetes,
            "etcd": self.pins.etcd,
            "kwok": self.pins.kwok,
            "helm": self.pins.helm,
            "coredns": self.pins.coredns,
            "prometheus": self.pins.prometheus,
            "keda": self.pins.keda,
            "prometheus-adapter": self.pins.prometheus_adapter,
            "seaweedfs": self.pins.seaweedfs,
            "kuberay": self.pins.kuberay,
        }[tool]
        return self.cache_dir / f"{tool}-{version}"

    def binary(self, name: str) -> Path:
        """Path of a built binary by command name (kube-apiserver, etcd, kwok, helm, ...)."""
        tools = {**dict.fromkeys(KUBE_COMMANDS, "k8s"), **dict.fromkeys(PROMETHEUS_COMMANDS, "prometheus")}
        tools |= dict.fromkeys(KEDA_COMMANDS, "keda")
        tools["weed"] = "seaweedfs"
        tool = tools.get(name, name)
        return self.tool_dir(tool) / "bin" / name

    def built(self, name: str, target: str) -> Path:
        """``binary(name)``, or an AssertionError naming the build to run: tests that need a binary fail
        clearly (never skip) when it has not been built."""
        path = self.binary(name)
        if not path.exists():
            raise AssertionError(f"{path} is missing: run `e2e/cluster build --only {target}` first")
        return path

    @property
    def stages_dir(self) -> Path:
        """kwok stage configs copied from the kwok module source at build time."""
        return self.tool_dir("kwok") / "stages"

    @property
    def keda_crds_dir(self) -> Path:
        """KEDA's own CustomResourceDefinitions (config/crd/bases of its module), fetched at build time."""
        return self.tool_dir("keda") / "crds"

    @property
    def keda_source_dir(self) -> Path:
        """The KEDA module's source, unpacked from its zip: the operator is built in it, CRDs copied."""
        return self.tool_dir("keda") / "src"

    @property
    def kuberay_crd(self) -> Path:
        """KubeRay's RayService CRD (config/crd/bases of its ray-operator module), fetched at build time."""
        return self.tool_dir("kuberay") / "crds" / "ray.io_rayservices.yaml"

    @property
    def seaweedfs_source_dir(self) -> Path:
        """The SeaweedFS module's source, unpacked from its zip: `weed` is built in it."""
        return self.tool_dir("seaweedfs") / "src"

    @property
    def bin_dirs(self) -> list[Path]:
        """Folders to put on PATH to get kubectl, helm, kwok and etcd of the pinned versions."""
        return [self.tool_dir(tool) / "bin" for tool in ("k8s", "helm", "kwok", "etcd")]

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"


def _required_version(gomod: Path, module: str) -> str:
    """The version a go.mod requires of `module` (the first, non-replace, require line)."""
    try:
        text = gomod.read_text()
    except OSError as exc:
        raise ClusterError(f"cannot read {gomod}: {exc.strerror}") from exc
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", text, re.MULTILINE)
    if match is None:
        raise ClusterError(f"{gomod} does not require {module}")
    return match.group(1)


def read_pins(gomod_dir: Path = GOMOD_DIR) -> Pins:
    return Pins(
        kubernetes=_required_version(gomod_dir / "kubernetes" / "go.mod", "k8s.io/kubernetes"),
        etcd=_required_version(gomod_dir / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3"),
        kwok=_required_version(gomod_dir / "kwok" / "go.mod", "sigs.k8s.io/kwok"),
        helm=_required_version(gomod_dir / "helm" / "go.mod", "helm.sh/helm/v3"),
        helm_client_go=_required_version(gomod_dir / "helm" / "go.mod", "k8s.io/client-go"),
        coredns=_required_version(gomod_dir / "coredns" / "go.mod", "github.com/coredns/coredns"),
        prometheus=_required_version(gomod_dir / "prometheus" / "go.mod", "github.com/prometheus/prometheus"),
        keda=_required_version(gomod_dir / "keda" / "go.mod", "github.com/kedacore/keda/v2"),
        prometheus_adapter=_required_version(
            gomod_dir / "prometheus-adapter" / "go.mod", "sigs.k8s.io/prometheus-adapter"
        ),
        seaweedfs=_required_version(gomod_dir / "seaweedfs" / "go.mod", "github.com/seaweedfs/seaweedfs"),
        kuberay=_required_version(
            gomod_dir / "kuberay" / "go.mod", "github.com/ray-project/kuberay/ray-operator"
        ),
    )


def load(env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment.

    FLOTILLA_CACHE (default ~/.cache/flotilla) holds built binaries; FLOTILLA_CLUSTER_DIR (default
    $FLOTILLA_CACHE/cluster) holds the running cluster's state, outside the repository.
    """
    env = dict(os.environ) if env is None else env
    cache = Path(env.get("FLOTILLA_CACHE") or Path.home() / ".cache" / "flotilla").expanduser()
    state = Path(env.get("FLOTILLA_CLUSTER_DIR") or cache / "cluster").expanduser()
    return Settings(cache_dir=cache.absolute(), state_dir=state.absolute(), pins=read_pins())
