"""`e2e/cluster up --with kuberay-crds`: KubeRay's RayService CRD installed into the cluster (no operator).

Enough for rendered `engine: kuberay` packs to be checked by the apiserver (server-side dry run against the
CRD's schema); KubeRay's operator itself is not run here. The CRD (~1 MB) is applied server-side: a
client-side apply would not fit its last-applied annotation.
"""

from __future__ import annotations

import subprocess
import time

from clusterlib import building, settings

CRD_NAME = "rayservices.ray.io"


def install(cfg: settings.Settings, build: bool = True) -> None:
    """Fetch the pinned CRD when missing (unless `build` is False: then fail) and apply it; idempotent."""
    if not cfg.kuberay_crd.exists():
        if not build:
            raise settings.ClusterError(
                f"{cfg.kuberay_crd} is missing: run `e2e/cluster build --only kuberay-crds`"
            )
        building.fetch_kuberay_crd(cfg)
    kubectl = [str(cfg.binary("kubectl")), "--kubeconfig", str(cfg.kubeconfig)]
    apply = ["apply", "--server-side", "--force-conflicts", "-f", str(cfg.kuberay_crd)]
    done = subprocess.run([*kubectl, *apply], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise settings.ClusterError(f"kubectl apply of {CRD_NAME} failed: {done.stderr.strip()}")
    # Retried: on a just-created CRD `kubectl wait` fails at once while it has no conditions yet.
    wait = ["wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=10s"]
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run([*kubectl, *wait], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise settings.ClusterError(f"{CRD_NAME} not Established: {done.stderr.strip()}")
        time.sleep(0.5)
    print(f"kuberay-crds: {CRD_NAME} (KubeRay {cfg.pins.kuberay}) installed", flush=True)
