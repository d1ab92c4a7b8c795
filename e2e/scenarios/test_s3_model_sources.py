"""A model whose weights and LoRA adapter live in an S3-compatible store, end to end on the real node: the
helm-installed operator renders the init containers (`flotilla objects cp` in the flotilla image, the chart's
default), which fetch both objects from a real SeaweedFS (built from source, signed requests, keys from a
Secret under names of the fleet's choosing); llama.cpp then serves the base with the adapter and answers
through the fleet's router. The files in the pod are byte for byte the objects in the store.

The store (`object_store`, conftest) runs on this machine, bound to the real node's bridge address, which
the pods reach (the node is this machine). A second model names an object that is not in the store: its
download fails, and the pod's init container says why in its termination message (`kubectl describe`), not
in a traceback, and the operator puts that line in the model's status.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterlib.waiting import wait_until
from demolib import asking, hostdirs, installing
from demolib.forwarding import port_forward
from demolib.installing import Target
from demolib.tools import Tools

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "distilling"))  # distilkit: an adapter GGUF for the base
from distilkit import random_adapter  # noqa: E402
from objectstores import BUCKET, Store, fleet_with_keys, source_keys  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

FLEET = "stored"
SECRET = "object-store"
SERVED, MISSING = "pocket-s3", "absent-s3"
WEIGHTS_KEY = f"models/{hostdirs.GGUF.name}"
ADAPTER_KEY = "adapters/stored/chat/v1/adapter.gguf"
ON_REAL_NODE = {
    "nodeSelector": {"kubernetes.io/hostname": "real-0"},
    "tolerations": [{"key": "flotilla.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def s3_source(store: Store, key: str) -> dict[str, Any]:
    """An s3:// source with the store's endpoint; the keys from the Secret under non-AWS names."""
    return {
        "uri": f"s3://{BUCKET}/{key}",
        "endpoint": store.url,
        **source_keys(SECRET),
    }


def fleet(store: Store) -> dict[str, Any]:
    """`chat` answered by the Gemma base + adapter from the store; `broken` by a model whose object is not
    there; the example's stand-in as the fallback and its router placement."""
    example = yaml.safe_load((installing.EXAMPLE / "fleet.yaml").read_text())
    common = {
        "runtime": "llamacpp",
        "args": ["--chat_format", "gemma"],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "maxContextLength": 2048,
        **ON_REAL_NODE,
    }
    models = [
        {"name": SERVED, "source": s3_source(store, WEIGHTS_KEY), "adapter": s3_source(store, ADAPTER_KEY),
         "tasks": ["chat"], **common},
        {"name": MISSING, "source": s3_source(store, "models/not-uploaded.gguf"), "tasks": ["broken"],
         **common},
    ]  # fmt: skip
    routing = {"defaultTask": "chat", "tasks": [{"name": "chat"}, {"name": "broken"}]}
    spec = {"models": models, "fallbacks": example["spec"]["fallbacks"], "routing": routing,
            "router": example["spec"]["router"]}  # fmt: skip
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ModelFleet", "metadata": {"name": FLEET},
            "spec": spec}  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def store(object_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The scenarios' store, holding the Gemma GGUF and an adapter GGUF for it."""
    adapter = tmp_path_factory.mktemp("adapter") / "adapter.gguf"
    random_adapter(adapter, hostdirs.GGUF)
    client = object_store.client()
    client.upload_file(str(hostdirs.GGUF), BUCKET, WEIGHTS_KEY)
    client.upload_file(str(adapter), BUCKET, ADAPTER_KEY)
    return object_store


@pytest.fixture(scope="module")
def stored(installed: Target, tools: Tools, store: Store) -> Iterator[str]:
    """The Secret and the fleet applied; the namespace."""
    with fleet_with_keys(tools, installed.namespace, fleet(store), SECRET):
        yield installed.namespace


def model_pod(tools: Tools, namespace: str, model: str) -> dict[str, Any] | None:
    pods = installing.pods_of(tools, namespace, f"flotilla.dev/fleet={FLEET},flotilla.dev/model={model}")
    return pods[0] if pods else None


def model_phase(tools: Tools, namespace: str, model: str) -> str:
    status = installing.fleet(tools, namespace, FLEET).get("status") or {}
    return next((m["phase"] for m in status.get("models") or [] if m["name"] == model), "")


def model_message(tools: Tools, namespace: str, model: str) -> str:
    status = installing.fleet(tools, namespace, FLEET).get("status") or {}
    return next((m["message"] for m in status.get("models") or [] if m["name"] == model), "")


def object_sha256(store: Store, key: str) -> str:
    return hashlib.sha256(store.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()


def test_weights_and_adapter_come_from_the_store_and_answer(stored: str, tools: Tools, store: Store) -> None:
    namespace = stored
    wait_until(lambda: model_phase(tools, namespace, SERVED) == "Ready", 600, f"{SERVED} Ready", interval=2)
    pod = model_pod(tools, namespace, SERVED)
    assert pod is not None
    inits = {s["name"]: s["state"] for s in pod["status"]["initContainerStatuses"]}
    assert set(inits) == {"download", "download-adapter"}, inits
    assert all(state["terminated"]["exitCode"] == 0 for state in inits.values()), inits
    weights, adapter = f"/models/{hostdirs.GGUF.name}", "/adapters/adapter.gguf"
    found = tools.kubectl("exec", "-n", namespace, pod["metadata"]["name"], "-c", "server", "--",
                          "sha256sum", weights, adapter)  # fmt: skip
    in_pod = {path: digest for digest, path in (line.split() for line in found.splitlines())}
    assert in_pod == {weights: object_sha256(store, WEIGHTS_KEY), adapter: object_sha256(store, ADAPTER_KEY)}
    command = pod["spec"]["containers"][0]["command"] + pod["spec"]["containers"][0].get("args", [])
    assert adapter in command  # the server was started with the adapter (it exits when it cannot load it)
    with port_forward(tools, namespace, f"svc/{FLEET}-router", 8080) as port:
        answer = asking.chat(f"http://127.0.0.1:{port}", "Say hello in Spanish.", max_tokens=16,
                             headers={"x-flotilla-task": "chat"})  # fmt: skip
    assert answer.status == 200, answer.text
    assert answer.model == SERVED and answer.text.strip()


def test_a_missing_object_fails_the_download_with_the_stores_answer(stored: str, tools: Tools) -> None:
    namespace = stored

    def failed_download() -> dict[str, Any] | None:
        pod = model_pod(tools, namespace, MISSING)
        for status in ((pod or {}).get("status") or {}).get("initContainerStatuses") or []:
            ended = status.get("lastState", {}).get("terminated") or status["state"].get("terminated")
            if status["name"] == "download" and ended and ended["exitCode"] != 0:
                return dict(ended)
        return None

    ended = wait_until(failed_download, 300, f"{MISSING}'s download to fail", interval=2)
    message = ended.get("message", "")
    assert "models/not-uploaded.gguf" in message and "404" in message, ended
    assert "Traceback" not in message

    # ... and the fleet's status says it, for `kubectl get mf -o yaml` (the operator reads the pod's status)
    def named() -> str | None:
        message = model_message(tools, namespace, MISSING)
        return message if "404" in message else None

    said = wait_until(named, 120, f"{MISSING}'s status to name the 404", interval=2)
    assert "pods failing: download exited 1: " in said and "models/not-uploaded.gguf" in said, said
    assert model_phase(tools, namespace, MISSING) != "Ready"
