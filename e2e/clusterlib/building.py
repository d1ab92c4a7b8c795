"""`e2e/cluster build`: compile the pinned binaries from source into the cache.

Each tool is built with `go build` inside its throwaway module under e2e/gomod/ (so `go.sum` pins every
dependency). What is already in the cache is skipped. Binaries are built into a temporary folder and
renamed into place, so an interrupted build never leaves a half-written binary that a later run would
mistake for a finished one; the rerun resumes from Go's build cache (~/.cache/go-build) instead of starting
from zero. Modules are fetched into Go's default module cache (`go env GOMODCACHE`).

KEDA and SeaweedFS are the exceptions to the throwaway modules: their go.mod files carry `replace`
directives (KEDA pins Kubernetes and Prometheus), which Go ignores in a dependency, so their module zips
(fetched through the proxy and checked against e2e/gomod/<tool>/go.sum) are unpacked into the cache and
built in place, with their own go.mod/go.sum (read-only, Go's default: a build that would need to change
them fails).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clusterlib import settings

# Stage configs kwok needs to make nodes Ready, keep their leases, and run/complete/delete pods; paths
# inside the kwok module source.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
NODE_TARGETS = ("node", "coredns")  # built only for the opt-in real node
# Service discovery compiled into Prometheus: only Kubernetes (the chart's ServiceMonitor/PodMonitor
# discovery), static and file; the cloud SDKs of the other plugins would triple the build on 2 cores.
PROMETHEUS_TAGS = "remove_all_sd,enable_kubernetes_sd"
KEDA_MODULE = "github.com/kedacore/keda/v2"
SEAWEEDFS_MODULE = "github.com/seaweedfs/seaweedfs"
KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_CRD = "config/crd/bases/ray.io_rayservices.yaml"
FETCH_TARGETS = ("keda-crds", "kuberay-crds")  # copied from a module's source, nothing compiled
BUILD_DATE = "2026-01-01T00:00:00Z"  # fixed, so builds are reproducible and the link cache hits


@dataclass(frozen=True)
class Target:
    """One `go build` invocation: binaries (name -> Go package) built in one throwaway module."""

    name: str
    module_dir: Path
    packages: dict[str, str]
    ldflags: str
    bin_dir: Path
    tags: str = ""
    prepare: Callable[[], object] | None = None  # makes module_dir first (KEDA: unpack its module source)


def kube_ldflags(version: str) -> str:
    """-X flags that make `--version` of the Kubernetes binaries tell the truth (as hack/lib/version.sh)."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={BUILD_DATE}",
        ]
    return " ".join(flags)


def helm_ldflags(version: str, client_go: str) -> str:
    """As helm's Makefile: its version, and the Kubernetes version it assumes (client-go 0.N -> 1.N)."""
    minor = client_go.lstrip("v").split(".")[1]
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={version}"]
    flags.append("-X helm.sh/helm/v3/internal/version.gitTreeState=clean")
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def prometheus_ldflags(version: str) -> str:
    """As Prometheus's .promu.yml: module v0.316.0 is Prometheus 3.16.0 (`prometheus --version`)."""
    minor, patch = version.lstrip("v").split(".")[1:3]
    release = f"{int(minor) // 100}.{int(minor) % 100}.{patch}"
    pkg = "github.com/prometheus/common/version"
    flags = ["-s", "-w", f"-X {pkg}.Version={release}", f"-X {pkg}.Revision={version}"]
    flags += [
        f"-X {pkg}.Branch=HEAD",
        f"-X {pkg}.BuildUser=flotilla@e2e",
        f"-X {pkg}.BuildDate=20260101-00:00:00",
    ]
    return " ".join(flags)


def keda_ldflags(version: str) -> str:
    """As KEDA's Makefile: `keda-operator --version` logs the release (no git checkout: the tag as commit)."""
    pkg = "github.com/kedacore/keda/v2/version"
    return f"-s -w -X={pkg}.GitCommit={version} -X={pkg}.Version={version.lstrip('v')}"


def targets(cfg: settings.Settings) -> list[Target]:
    pins = cfg.pins
    return [
        Target(
            name="kubernetes",
            module_dir=settings.GOMOD_DIR / "kubernetes",
            packages={cmd: f"k8s.io/kubernetes/cmd/{cmd}" for cmd in settings.CONTROL_PLANE_COMMANDS},
            ldflags=kube_ldflags(pins.kubernetes),
            bin_dir=cfg.tool_dir("k8s") / "bin",
        ),
        Target(
            name="node",  # only with `build --real-node`: kwok stands in for kubelets otherwise
            module_dir=settings.GOMOD_DIR / "kubernetes",
            packages={cmd: f"k8s.io/kubernetes/cmd/{cmd}" for cmd in settings.NODE_COMMANDS},
            ldflags=kube_ldflags(pins.kubernetes),
            bin_dir=cfg.tool_dir("k8s") / "bin",
        ),
        Target(
            name="coredns",  # only with `build --real-node`: the real node's cluster DNS
            module_dir=settings.GOMOD_DIR / "coredns",
            packages={"coredns": "flotilla.dev/e2e/coredns"},
            ldflags="-s -w",
            bin_dir=cfg.tool_dir("coredns") / "bin",
        ),
        Target(
            name="etcd",
            module_dir=settings.GOMOD_DIR / "etcd",
            packages={"etcd": "go.etcd.io/etcd/server/v3"},
            ldflags="-s -w",
            bin_dir=cfg.tool_dir("etcd") / "bin",
        ),
        Target(
            name="kwok",
            module_dir=settings.GOMOD_DIR / "kwok",
            packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
            ldflags="-s -w",
            bin_dir=cfg.tool_dir("kwok") / "bin",
        ),
        Target(
            name="helm",
            module_dir=settings.GOMOD_DIR / "helm",
            packages={"helm": "helm.sh/helm/v3/cmd/helm"},
            ldflags=helm_ldflags(pins.helm, pins.helm_client_go),
            bin_dir=cfg.tool_dir("helm") / "bin",
        ),
        Target(
            name="prometheus",  # the observability tests' scraper and rule checker, not needed by `up`
            module_dir=settings.GOMOD_DIR / "prometheus",
            packages={
                cmd: f"github.com/prometheus/prometheus/cmd/{cmd}" for cmd in settings.PROMETHEUS_COMMANDS
            },
            ldflags=prometheus_ldflags(pins.prometheus),
            bin_dir=cfg.tool_dir("prometheus") / "bin",
            tags=PROMETHEUS_TAGS,
        ),
        Target(
            name="keda",  # the keda scaling test's autoscaler, not needed by `up`
            module_dir=cfg.keda_source_dir,
            packages={"keda-operator": "./cmd/operator", "keda-adapter": "./cmd/adapter"},
            ldflags=keda_ldflags(pins.keda),
            bin_dir=cfg.tool_dir("keda") / "bin",
            prepare=lambda: unpack_keda_source(cfg),
        ),
        Target(
            name="prometheus-adapter",  # the hpa scaling test's custom-metrics API, not needed by `up`
            module_dir=settings.GOMOD_DIR / "prometheus-adapter",
            packages={"prometheus-adapter": "sigs.k8s.io/prometheus-adapter/cmd/adapter"},
            ldflags="-s -w",  # its Makefile sets no version variables
            bin_dir=cfg.tool_dir("prometheus-adapter") / "bin",
        ),
        Target(
            name="seaweedfs",  # the capture tests' S3 store (`weed server -s3`), not needed by `up`
            module_dir=cfg.seaweedfs_source_dir,
            packages={"weed": "./weed"},
            ldflags="-s -w",  # as weed/Makefile
            bin_dir=cfg.tool_dir("seaweedfs") / "bin",
            prepare=lambda: unpack_module_source(
                cfg, SEAWEEDFS_MODULE, cfg.pins.seaweedfs, "seaweedfs", cfg.seaweedfs_source_dir
            ),
        ),
    ]


def _nice() -> list[str]:
    """Builds run at lower priority: the machines have 2 cores, shared with whatever else runs."""
    nice = shutil.which("nice")
    return [nice, "-n", "10"] if nice else []


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise settings.ClusterError("`go` is not on PATH: install Go 1.24 or newer to build the cluster")
    return go


def build_target(target: Target) -> bool:
    """Build the binaries of `target` that are missing; return True when something was built.

    Two processes building the same target (a `make test` and a test that needs the cluster) take turns
    on a lock file: each build empties `.build-tmp` first, so without it the second would delete the
    first's output before it is moved into place. The one that waited finds the binaries built."""
    if not _missing(target):
        return False
    target.bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(target.bin_dir.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _build_locked(target)


def _missing(target: Target) -> dict[str, str]:
    return {name: pkg for name, pkg in target.packages.items() if not (target.bin_dir / name).exists()}


def _build_locked(target: Target) -> bool:
    missing = _missing(target)
    if not missing:
        return False  # built by the process that held the lock
    if target.prepare is not None:
        target.prepare()
    tmp = target.bin_dir.parent / ".build-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    target.bin_dir.mkdir(parents=True, exist_ok=True)
    if len(missing) == 1:
        ((name, pkg),) = missing.items()
        out, pkgs = str(tmp / name), [pkg]
    else:  # `go build -o DIR/` names each binary after the last element of its package path.
        out, pkgs = f"{tmp}/", list(missing.values())
    # -buildvcs=false: the throwaway module sits inside the project's git checkout; its VCS state must not
    # change the binaries (nor fail the build where git distrusts the checkout's owner).
    tags = ["-tags", target.tags] if target.tags else []
    cmd = [
        *_nice(),
        _go(),
        "build",
        "-trimpath",
        "-buildvcs=false",
        *tags,
        "-ldflags",
        target.ldflags,
        "-o",
        out,
        *pkgs,
    ]
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    print(f"building {target.name}: {' '.join(missing)} (this takes minutes cold)", flush=True)
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=target.module_dir, env=env, check=False)
    if result.returncode != 0:
        raise settings.ClusterError(f"go build of {target.name} failed (exit {result.returncode}); see above")
    for name, pkg in missing.items():
        built = name if len(missing) == 1 else pkg.rsplit("/", 1)[-1]
        os.replace(tmp / built, target.bin_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"built {target.name} in {time.monotonic() - started:.0f} s -> {target.bin_dir}", flush=True)
    return True


def copy_kwok_stages(cfg: settings.Settings) -> None:
    """Concatenate kwok's stage configs from its module source into one --config file."""
    if (cfg.stages_dir / "stages.yaml").exists():
        return
    listed = subprocess.run(
        [_go(), "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=settings.GOMOD_DIR / "kwok",
        capture_output=True,
        text=True,
        check=False,
    )
    source = Path(listed.stdout.strip())
    if listed.returncode != 0 or not source.is_dir():
        raise settings.ClusterError(f"cannot find the kwok module source: {listed.stderr.strip()}")
    docs = [(source / rel).read_text().strip() for rel in KWOK_STAGES]
    cfg.stages_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.stages_dir / "stages.yaml.tmp"
    tmp.write_text("\n---\n".join(docs) + "\n")
    os.replace(tmp, cfg.stages_dir / "stages.yaml")


def _pinned_sum(go_sum: Path, module: str, version: str) -> str:
    for line in go_sum.read_text().splitlines():
        fields = line.split()
        if fields[:2] == [module, version]:
            return fields[2]
    raise settings.ClusterError(f"{go_sum} has no checksum for {module} {version}")


def _module_zip(cfg: settings.Settings, module: str, version: str, pin_dir: str) -> Path:
    """A pinned module zip, fetched through the proxy (checksum database verified) and checked against
    the pin in e2e/gomod/<pin_dir>/go.sum."""
    wanted = _pinned_sum(settings.GOMOD_DIR / pin_dir / "go.sum", module, version)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=cfg.cache_dir,  # outside any module
        env={**os.environ, "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise settings.ClusterError(f"go mod download {module}@{version} failed: {done.stderr}") from None
    archive = Path(info.get("Zip") or "/nonexistent")
    if info.get("Sum") != wanted or not archive.exists():
        raise settings.ClusterError(f"cannot fetch {module}@{version} (want {wanted}): {info}")
    return archive


def unpack_module_source(cfg: settings.Settings, module: str, version: str, pin_dir: str, dest: Path) -> bool:
    """Unpack a pinned module's source into the cache (built there, see the module docstring); return
    True when unpacked."""
    if (dest / "go.sum").exists():
        return False
    archive = _module_zip(cfg, module, version, pin_dir)
    prefix = f"{module}@{version}/"
    tmp = dest.parent / ".src-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            path = tmp / name.removeprefix(prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zipped.read(name))
    if not (tmp / "go.sum").exists():
        raise settings.ClusterError(f"{archive} has no go.sum")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    print(f"unpacked {module} {version} source -> {dest}", flush=True)
    return True


def unpack_keda_source(cfg: settings.Settings) -> bool:
    return unpack_module_source(cfg, KEDA_MODULE, cfg.pins.keda, "keda", cfg.keda_source_dir)


def fetch_keda_crds(cfg: settings.Settings) -> bool:
    """Copy KEDA's CRDs (config/crd/bases/*.yaml) out of its module source; return True when copied."""
    dest = cfg.keda_crds_dir
    if (dest / "keda.sh_scaledobjects.yaml").exists():
        return False
    unpack_keda_source(cfg)
    bases = cfg.keda_source_dir / "config" / "crd" / "bases"
    names = sorted(bases.glob("*.yaml"))
    if not (bases / "keda.sh_scaledobjects.yaml").exists():
        raise settings.ClusterError(f"{bases} has no keda.sh_scaledobjects.yaml")
    tmp = dest.parent / ".crds-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in names:
        shutil.copyfile(path, tmp / path.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    print(f"fetched KEDA {cfg.pins.keda} CRDs ({len(names)}) -> {dest}", flush=True)
    return True


def fetch_kuberay_crd(cfg: settings.Settings) -> bool:
    """Copy KubeRay's RayService CRD out of its pinned module zip (only that file is read; the module is
    not unpacked); return True when copied."""
    dest = cfg.kuberay_crd
    if dest.exists():
        return False
    version = cfg.pins.kuberay
    archive = _module_zip(cfg, KUBERAY_MODULE, version, "kuberay")
    with zipfile.ZipFile(archive) as zipped:
        try:
            text = zipped.read(f"{KUBERAY_MODULE}@{version}/{KUBERAY_CRD}")
        except KeyError:
            raise settings.ClusterError(f"{archive} has no {KUBERAY_CRD}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(text)
    os.replace(tmp, dest)
    print(f"fetched KubeRay {version} RayService CRD -> {dest}", flush=True)
    return True


def build(cfg: settings.Settings, only: list[str] | None = None, real_node: bool = False) -> None:
    """Build every pinned tool (or those named in `only`), skipping what the cache already has.

    The node binaries (kubelet, kube-proxy: target `node`) only with `real_node` or `only=["node"]`.
    """
    known = {t.name: t for t in targets(cfg)}
    for name in only or []:
        if name not in known and name not in FETCH_TARGETS:
            choices = ", ".join([*known, *FETCH_TARGETS])
            raise settings.ClusterError(f"unknown build target {name!r}; choose from {choices}")
    for target in known.values():
        if (only and target.name not in only) or (target.name in NODE_TARGETS and not (real_node or only)):
            continue
        if not build_target(target):
            print(f"{target.name}: cached in {target.bin_dir}", flush=True)
        if target.name == "kwok":
            copy_kwok_stages(cfg)
    if (not only or "keda-crds" in only) and not fetch_keda_crds(cfg):
        print(f"keda-crds: cached in {cfg.keda_crds_dir}", flush=True)
    if (not only or "kuberay-crds" in only) and not fetch_kuberay_crd(cfg):
        print(f"kuberay-crds: cached in {cfg.kuberay_crd}", flush=True)
    sys.stdout.flush()


def missing_binaries(cfg: settings.Settings, real_node: bool = False) -> list[Path]:
    """Binaries `up` needs that are not built yet."""
    names = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    names += [*settings.NODE_COMMANDS, "coredns"] if real_node else []
    paths = [cfg.binary(name) for name in names] + [cfg.stages_dir / "stages.yaml"]
    return [p for p in paths if not p.exists()]
