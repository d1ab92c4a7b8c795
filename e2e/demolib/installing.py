"""Install the demo: images into the real node's containerd, the chart onto the real node, the example
fleet (examples/03-local) with a stand-in or a real cloud provider as its fallback, and the waits for each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterlib.waiting import wait_until
from demolib.tools import DemoError, Tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flotilla"
EXAMPLE = ROOT / "examples" / "03-local"
LOCAL_IMAGES = CHART / "values-local.yaml"
REAL_NODE_VALUES = Path(__file__).resolve().parent / "values-real-node.yaml"
DEMO_POLICY = Path(__file__).resolve().parent / "values-demo-policy.yaml"
FLEET = "assistants"  # metadata.name in examples/03-local/fleet.yaml
LOCAL_MODEL = "pocket"  # its model served for real on the real node
API_KEY_SECRET = "frontier-api-key"  # the fallback's secretKeyRef in examples/03-local/fleet.yaml


@dataclass(frozen=True)
class Target:
    """Where the operator and the fleet go."""

    namespace: str = "flotilla-demo"  # the fleet's
    release: str = "flotilla"
    operator_namespace: str = "flotilla-system"
    watch_fleet_namespace_only: bool = False  # tests: keep the operator off other tests' namespaces


@dataclass(frozen=True)
class Provider:
    """The fleet's cloud fallback: the in-cluster stand-in, or a real provider when its key is set."""

    name: str  # stand-in, openai, anthropic
    fallback: dict[str, Any] | None = None  # replaces spec.fallbacks[0]; None keeps the stand-in
    api_key: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Provider:
        """OPENAI_API_KEY, else ANTHROPIC_API_KEY, else the stand-in (which says so in every answer)."""
        env = os.environ if env is None else env
        ref = {"secretKeyRef": {"name": API_KEY_SECRET, "key": "api-key"}}
        price = {"inputPerMTok": 0.40, "outputPerMTok": 1.60}
        if key := env.get("OPENAI_API_KEY"):
            model = env.get("FLOTILLA_DEMO_OPENAI_MODEL", "gpt-4.1-mini")
            fallback = {"name": "frontier", "provider": "openai", "model": model, "apiKey": ref}
            return cls("openai", fallback | {"price": price}, key)
        if key := env.get("ANTHROPIC_API_KEY"):
            model = env.get("FLOTILLA_DEMO_ANTHROPIC_MODEL", "claude-haiku-4-5")
            fallback = {"name": "frontier", "provider": "anthropic", "model": model, "apiKey": ref}
            return cls("anthropic", fallback | {"price": price}, key)
        return cls("stand-in")


def build_images(containerd_socket: Path, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """scripts/build-images --load into the real node's containerd (k8s.io): one row per image (`names`:
    only those, e.g. flotilla and ray; default all)."""
    command = [str(ROOT / "scripts" / "build-images"), "--load", "--json", *names]
    command += ["--containerd-address", str(containerd_socket)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise DemoError(f"scripts/build-images failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def install_operator(tools: Tools, target: Target, values: Mapping[str, Any] | None = None) -> None:
    """The CRDs (applied: `helm upgrade` never updates a chart's crds/), then `helm upgrade --install` with
    the local images, the operator on the real node, the stand-in allowed over http, and `values`
    (`--set-json`), waiting for Ready."""
    tools.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    settings = dict(values or {})
    if target.watch_fleet_namespace_only:
        settings.setdefault("operator.watchNamespaces", [target.namespace])
    args = ["upgrade", "--install", target.release, str(CHART), "--namespace", target.operator_namespace]
    args += ["--create-namespace", "--values", str(LOCAL_IMAGES), "--values", str(REAL_NODE_VALUES)]
    args += ["--values", str(DEMO_POLICY)]
    for key, value in settings.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    try:
        tools.helm(*args, "--wait", "--timeout", "5m")
    except DemoError as exc:
        raise DemoError(f"{exc}\n{why_not_ready(tools, target.operator_namespace)}") from None


def operator_pods(tools: Tools, target: Target) -> list[dict[str, Any]]:
    """The release's operator pods (any phase)."""
    selector = f"app.kubernetes.io/instance={target.release}"
    return pods_of(tools, target.operator_namespace, selector)


def apply_example(tools: Tools, target: Target, provider: Provider) -> None:
    """The namespace, the fallback's key and provider (the stand-in, or the real one), and the fleet."""
    namespace = target.namespace
    tools.apply(namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    if provider.fallback is None:
        tools.apply(namespace, str(EXAMPLE / "standin.yaml"))  # its Secret holds a dummy key
    else:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": API_KEY_SECRET},
            "stringData": {"api-key": provider.api_key},
        }  # through stdin: the key never appears on a command line or in an error message
        tools.apply(namespace, secret)
    tools.apply(namespace, str(EXAMPLE / "fleet.yaml"))
    if provider.fallback is not None:
        patch = [{"op": "replace", "path": "/spec/fallbacks/0", "value": provider.fallback}]
        tools.kubectl("patch", "modelfleet", FLEET, "-n", namespace, "--type=json", "-p", json.dumps(patch))


def fleet(tools: Tools, namespace: str, name: str = FLEET) -> dict[str, Any]:
    found: dict[str, Any] = tools.get_json("modelfleet", name, "-n", namespace)
    return found


def is_ready(body: Mapping[str, Any]) -> bool:
    """Ready=True for the current generation."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def wait_fleet_ready(tools: Tools, namespace: str, timeout: float, name: str = FLEET) -> dict[str, Any]:
    """The fleet once Ready (its router and every model have ready pods); on timeout, a DemoError with the
    fleet's conditions and the namespace's pods, which usually say why."""
    try:
        return wait_until(
            lambda: (body if is_ready(body := fleet(tools, namespace, name)) else None),
            timeout, f"ModelFleet {namespace}/{name} to be Ready", interval=1,
        )  # fmt: skip
    except AssertionError as exc:
        conditions = (fleet(tools, namespace, name).get("status") or {}).get("conditions", [])
        lines = [f"  {c['type']}={c['status']} {c.get('reason')}: {c.get('message')}" for c in conditions]
        details = why_not_ready(tools, namespace)
        raise DemoError(f"{exc}\nconditions:\n" + "\n".join(lines) + f"\n{details}") from None


def why_not_ready(tools: Tools, namespace: str) -> str:
    """What usually says why pods did not get Ready: the namespace's pods and its Warning events (image
    missing, unschedulable, probes failing), and the nodes' pressure conditions and taints."""
    pods = tools.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False)
    events = tools.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "type=Warning", "--sort-by", ".lastTimestamp",
        check=False,
    )  # fmt: skip
    nodes = tools.kubectl(
        "get", "nodes", "-o",
        "custom-columns=NODE:.metadata.name,TAINTS:.spec.taints[*].key,"
        "PRESSURE:.status.conditions[?(@.status==\"True\")].type",
        check=False,
    )  # fmt: skip
    return f"pods:\n{pods}\nwarning events:\n{events[-4000:]}\nnodes:\n{nodes}"


def pods_of(tools: Tools, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = tools.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return pods


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions", [])
    deleting = pod["metadata"].get("deletionTimestamp") is not None
    return not deleting and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def say(message: str) -> None:
    """Progress for a person, on stderr (stdout carries the answers)."""
    print(message, file=sys.stderr, flush=True)
