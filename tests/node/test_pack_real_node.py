"""Packing on the real node (issue 13's acceptance): one fleet whose Gemma 3 270M GGUF is served under four
names and settings. Three share one pack pod (`flotilla pack-serve`, Ray Serve, in the `flotilla-ray`
image) and answer through the fleet's real router; the fourth does not fit the pack's memory and lands in a
second pack pod; the plan is in status.packs. With `maxLoaded: 2` the evicted model's next request is
held and answered. Deleting the first pack's pod makes its three models fall back to the stand-in cloud,
and they come back with the new pod while the second pack keeps answering.

Everything is real: `flotilla operator` (a process here, as the operator's ServiceAccount), the router and
the pack pods in the node's containerd, the stand-in provider on the node's IP. The GGUF reaches the pack
pods through a `pvc://` source: a hostPath PersistentVolume over a copy of the cached file, bound to a claim
(the path the operator renders for any pvc:// source: one read-only volume per model).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterlib import nodeconfig
from clusterlib.sessions import RealNode
from demolib import asking, installing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # the operator's process kit
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
import operatorkit
from operatorkit import kubectl, wait_until
from routerkit import PYTHON, Proc, free_port

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1800)]

GGUF = Path.home() / ".cache" / "flotilla" / "models" / "gemma-3-270m-q4_k_m.gguf"  # scripts/gemma-model
FLEET = "packed"
BANNER = "[flotilla stand-in provider]"
PACKED = ("alpha", "beta", "gamma")  # one pack pod
CONTEXTS = {"alpha": 512, "beta": 1024, "gamma": 2048, "delta": 512}
READY_TIMEOUT_S = 600  # two Ray pods and three llama.cpp loads on the shared 2-core machine


@dataclass(frozen=True)
class Packed:
    namespace: str
    router: str  # http://ROUTER_POD_IP:8080


def _fleet(cloud_port: int, node: RealNode) -> dict[str, Any]:
    """Four names for one GGUF, 600Mi of weights each: three fill pack `small` (3Gi, 10% kept free), the
    fourth opens a second pod. 250m CPU each, so both packs and the router fit the 2-core node."""
    placement = {"nodeSelector": node.node_selector, "tolerations": [node.toleration]}
    models = [
        {
            "name": name,
            "source": {"uri": f"pvc://gemma/{GGUF.name}"},
            "runtime": "llamacpp",
            "maxContextLength": context,
            "resources": {"requests": {"cpu": "250m"}},
            "env": [{"name": "CHAT_FORMAT", "value": "gemma"}],  # the GGUF's template is not picked up
            "placement": {"pack": "small", "memory": "600Mi"},
            **placement,
        }
        for name, context in CONTEXTS.items()
    ]
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET},
        "spec": {
            "packs": [{"name": "small", "memory": "3Gi", "maxLoaded": 2}],
            "models": models,
            "fallbacks": [
                {
                    "name": "frontier",
                    "provider": "openai-compatible",
                    "baseURL": f"http://{nodeconfig.NODE_IP}:{cloud_port}/v1",
                    "model": "stand-in",
                }
            ],
            "routing": {
                "defaultTask": "chat",
                "tasks": [{"name": "chat", "models": list(CONTEXTS)}],
                "fallbackOn": ["unavailable", "error", "timeout", "overload", "cold"],
            },
            "router": {"replicas": 1, **placement},
        },
    }


def _gemma_volume(namespace: str, directory: Path) -> str:
    """A hostPath PersistentVolume over `directory`, pre-bound to claim `gemma`; returns the PV's name."""
    name = f"gemma-{namespace}"
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(directory), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": "gemma"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "gemma", "namespace": namespace},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    for doc in (volume, claim):
        kubectl("apply", "-f", "-", stdin=json.dumps(doc))
    return name


def _pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = operatorkit.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return items


def _pack_pods(namespace: str, pack_pod: str) -> list[dict[str, Any]]:
    """Ready pods of one planned pack pod (`small-1`)."""
    pods = _pods(namespace, f"flotilla.dev/fleet={FLEET},flotilla.dev/pack={pack_pod}")
    return [p for p in pods if installing.is_pod_ready(p)]


def _loaded(pod: dict[str, Any]) -> dict[str, bool]:
    """pack-serve's own view: which of its models are loaded now."""
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8000/v1/models", timeout=30) as response:
        return {m["id"]: bool(m["loaded"]) for m in json.load(response)["data"]}


def _answers(pod: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8000/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _ask(packed: Packed, model: str, timeout: float = 300) -> asking.Answer:
    return asking.chat(packed.router, "Hello! Who are you?", max_tokens=8, timeout=timeout, model=model)


@pytest.fixture(scope="module")
def packed(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packed]:
    """The images in the node's containerd, the stand-in, the operator and the fleet, Ready."""
    started = time.monotonic()
    installing.build_images(real_node.containerd_socket, ["flotilla", "ray"])
    print(f"\nimages built and loaded in {time.monotonic() - started:.0f} s", file=sys.stderr)
    logs = tmp_path_factory.mktemp("packnode")
    operatorkit.install_crds()
    kubeconfig = operatorkit.service_account_kubeconfig(logs)
    weights = Path(tempfile.mkdtemp(prefix="flotilla-gemma-", dir="/var/tmp"))  # readable by the pods' uid
    weights.chmod(0o755)
    shutil.copyfile(GGUF, weights / GGUF.name)
    (weights / GGUF.name).chmod(0o644)
    cloud_port = free_port()
    cloud = Proc(
        "standin",
        [PYTHON, "-m", "flotilla.standin", "--host", nodeconfig.NODE_IP, "--port", str(cloud_port)],
        logs,
    )
    with operatorkit.scratch_namespace("packnode") as namespace:
        volume = _gemma_volume(namespace, weights)
        operator = operatorkit.OperatorProcess(
            kubeconfig, logs, args=("--namespace", namespace),
            env={"FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": nodeconfig.NODE_IP},
        )  # fmt: skip
        try:
            cloud.wait_http(f"http://{nodeconfig.NODE_IP}:{cloud_port}/healthz", 30)
            operator.start()
            applied = time.monotonic()
            kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(_fleet(cloud_port, real_node)))
            try:
                wait_until(
                    lambda: installing.is_ready(operatorkit.get_json("modelfleet", FLEET, "-n", namespace)),
                    READY_TIMEOUT_S, "the packed fleet Ready", interval=2,
                )  # fmt: skip
            except AssertionError:
                print(kubectl("get", "pods,modelfleet", "-n", namespace, "-o", "wide"), file=sys.stderr)
                print(operator.log()[-3000:], file=sys.stderr)
                raise
            print(f"fleet Ready {time.monotonic() - applied:.0f} s after apply", file=sys.stderr)
            routers = _pods(namespace, f"flotilla.dev/fleet={FLEET},flotilla.dev/component=router")
            (router,) = [p for p in routers if installing.is_pod_ready(p)]
            yield Packed(namespace, f"http://{router['status']['podIP']}:8080")
            assert not operatorkit.log_errors(operator.log()), operator.log()[-3000:]
        finally:
            operator.stop()
            cloud.stop()
            kubectl("delete", "modelfleet", FLEET, "-n", namespace, "--ignore-not-found", "--wait=false")
            kubectl("delete", "pv", volume, "--ignore-not-found", "--wait=false", check=False)
    shutil.rmtree(weights, ignore_errors=True)


def test_the_plan_is_in_status_and_rendered_as_two_pack_pods(packed: Packed) -> None:
    status = operatorkit.get_json("modelfleet", FLEET, "-n", packed.namespace)["status"]
    packs = {p["name"]: p for p in status["packs"]}
    assert sorted(packs) == ["small-1", "small-2"]
    assert sorted(packs["small-1"]["models"]) == list(PACKED)
    assert packs["small-2"]["models"] == ["delta"]
    assert {m["name"]: m.get("pack") for m in status["models"]} == {
        "alpha": "small-1", "beta": "small-1", "gamma": "small-1", "delta": "small-2",
    }  # fmt: skip
    deployments = operatorkit.get_json(
        "deployments", "-n", packed.namespace, "-l", f"flotilla.dev/fleet={FLEET}"
    )
    names = sorted(d["metadata"]["name"] for d in deployments["items"])
    assert names == [f"{FLEET}-pack-small-1", f"{FLEET}-pack-small-2", f"{FLEET}-router"]  # none per model
    (pod,) = _pack_pods(packed.namespace, "small-1")
    assert pod["spec"]["nodeName"] == "real-0"
    assert pod["spec"]["containers"][0]["image"].startswith("flotilla-ray:")


def test_every_packed_model_answers_through_the_router(packed: Packed) -> None:
    for model in ("gamma", "beta", "delta"):  # loaded at start (the first two of pack small-1, maxLoaded 2)
        answer = _ask(packed, model)
        assert answer.status == 200, answer.body
        assert answer.model == model and not answer.reason.startswith("fallback"), answer.headers
        assert answer.text.strip() and BANNER not in answer.text
        assert answer.body["model"] == model


def test_the_evicted_models_next_request_is_held_and_answered(packed: Packed) -> None:
    (pod,) = _pack_pods(packed.namespace, "small-1")
    for model in ("gamma", "beta"):  # gamma the least recently used
        assert _ask(packed, model).model == model
    assert _loaded(pod) == {"alpha": False, "beta": True, "gamma": True}
    answer = _ask(packed, "alpha")  # held while gamma is unloaded and alpha loaded
    assert (answer.status, answer.model) == (200, "alpha"), answer.body
    assert _loaded(pod) == {"alpha": True, "beta": True, "gamma": False}
    evicted = _ask(packed, "gamma")  # now the evicted one: held again (beta goes), answered
    assert (evicted.status, evicted.model) == (200, "gamma"), evicted.body
    assert not evicted.reason.startswith("fallback") and BANNER not in evicted.text
    assert _loaded(pod) == {"alpha": True, "beta": False, "gamma": True}
    print(f"\nunloaded model answered through the router in {evicted.seconds:.2f} s", file=sys.stderr)


def test_the_pack_pods_loss_falls_back_for_all_three_and_they_come_back(packed: Packed) -> None:
    (pod,) = _pack_pods(packed.namespace, "small-1")
    name = pod["metadata"]["name"]
    kubectl("delete", "pod", name, "-n", packed.namespace, "--grace-period=1", "--wait=false")
    wait_until(lambda: not _answers(pod), 60, f"pack pod {name} to stop answering", interval=0.5)
    for model in PACKED:
        answer = _ask(packed, model, timeout=120)
        assert answer.status == 200, answer.body
        assert answer.model == "frontier" and answer.reason.startswith("fallback:"), answer.headers
        assert answer.text.startswith(BANNER)
    still = _ask(packed, "delta")  # the other pack is untouched
    assert (still.status, still.model) == (200, "delta"), still.headers
    lost = time.monotonic()

    def back(model: str) -> bool:
        answer = _ask(packed, model)
        return answer.status == 200 and answer.model == model

    wait_until(lambda: back("gamma"), READY_TIMEOUT_S, "gamma served by the new pack pod", interval=2)
    print(f"\npack pod back and answering {time.monotonic() - lost:.0f} s after its loss", file=sys.stderr)
    (new,) = _pack_pods(packed.namespace, "small-1")
    assert new["metadata"]["name"] != name
    for model in PACKED:
        assert back(model), model
