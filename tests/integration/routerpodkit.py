"""A fleet's router as a loopback process playing the fleet's (kwok) router pod (the keda and hpa scaling
tests, bench/reaction.py).

The router runs the config the operator rendered into the `<fleet>-router` ConfigMap, with each model's
upstream replaced by a loopback URL (a kwok pod's IP answers nothing). It is published in an EndpointSlice
of the `<fleet>-router-admin` Service under a host name (the apiserver refuses loopback IPs) whose endpoint
points (`targetRef`) at the fleet's router pod: the built-in autoscaler (FLOTILLA_AUTOSCALER_HOST_ALIASES)
and Prometheus (promkit's last relabeling) find it there and map the host to 127.0.0.1, and Prometheus
labels its series with that pod, as KEDA's query selects on.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import operatorkit as ok
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import PYTHON, Proc, free_port

HOST = "router.flotilla.test"


def rendered_config(namespace: str, fleet: str, upstream: Callable[[str], str]) -> dict[str, Any]:
    """The router config the operator rendered, each model's endpoints replaced by [upstream(model name)]."""

    def rendered() -> dict[str, Any] | None:
        done = ok.kubectl_try("get", "configmap", f"{fleet}-router", "-n", namespace, "-o", "json")
        return json.loads(done.stdout) if done.returncode == 0 else None

    config: dict[str, Any] = yaml.safe_load(
        ok.wait_until(rendered, 60, "the router ConfigMap")["data"]["router.yaml"]
    )
    for model in config["models"]:
        model.pop("service", None)
        model["endpoints"] = [upstream(model["name"])]
    return config


def sink_claim(namespace: str, host_dir: Path) -> str:
    """The sink's claim, bound to a hostPath volume made for it: its PersistentVolume's name."""
    volume = f"{namespace}-traces"
    ok.apply_doc({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "hostPath": {"path": str(host_dir)},
                 "claimRef": {"namespace": namespace, "name": "traces"}},
    })  # fmt: skip
    ok.apply_doc({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "traces", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": volume,
                 "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    return volume


class LoopbackRouter:
    """`flotilla router` on free loopback ports running `config`; published as the fleet's router pod."""

    def __init__(self, namespace: str, fleet: str, config: dict[str, Any], tmp: Path) -> None:
        path = tmp / "router.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(
            "router",
            [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path), "--port", str(self.port),
             "--admin-port", str(self.admin_port)],
            tmp, {"POD_NAME": f"{fleet}-router-loopback"},
        )  # fmt: skip
        try:
            self.proc.wait_http(f"{self.url}/readyz", 60)
            self.pod = self._publish(namespace, fleet)
        except BaseException:
            self.proc.stop()
            raise

    def _publish(self, namespace: str, fleet: str) -> str:
        def router_pod() -> str | None:
            selector = f"flotilla.dev/fleet={fleet},flotilla.dev/component=router"
            pods = ok.get_json("pods", "-n", namespace, "-l", selector)["items"]
            return min((p["metadata"]["name"] for p in pods), default=None)

        service, pod = f"{fleet}-router-admin", ok.wait_until(router_pod, 60, "the fleet's (kwok) router pod")
        ok.apply_doc({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-loopback", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "flotilla-tests"}},
            "addressType": "FQDN", "ports": [{"name": "admin", "port": self.admin_port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [HOST], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}}],
        })  # fmt: skip
        return pod

    def stop(self) -> None:
        self.proc.stop()


class Load:
    """`clients` threads sending `body` to `url` one request after another until stopped, so the router
    keeps `clients` requests in flight. A streamed body (`"stream": true`) is read line by line, and
    stopping closes it mid-answer (the servers see the client go)."""

    def __init__(
        self, url: str, body: dict[str, Any], clients: int, timeout: float = 120, join_timeout: float = 30
    ) -> None:
        self.url = url
        self.body = body
        self.timeout = timeout
        self.join_timeout = join_timeout
        self.stopped = threading.Event()
        self.statuses: list[int] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self.stopped.is_set():
                if not self.body.get("stream"):
                    self.statuses.append(client.post(self.url, json=self.body).status_code)
                    continue
                with client.stream("POST", self.url, json=self.body) as response:
                    self.statuses.append(response.status_code)
                    for _ in response.iter_lines():
                        if self.stopped.is_set():
                            break  # leaving the block closes the stream

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=self.join_timeout)


def operator_reaching_routers(kubeconfig: Path, log_dir: Path, namespace: str) -> ok.OperatorProcess:
    """The operator watching ``namespace``, with the routers' pod host name resolving to the loopback
    router (FLOTILLA_AUTOSCALER_HOST_ALIASES), so its timers read that router's counters; not started."""
    return ok.OperatorProcess(
        kubeconfig, log_dir, args=("--namespace", namespace),
        env={"FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{HOST}=127.0.0.1"},
    )  # fmt: skip
