"""Acceptance for router access control on the real local cluster: the apiserver refuses an exposed router
without access; the operator renders key Secrets as sha256 only (a missing one is reported, not fatal);
and two real router processes share one key's cloud budget through the operator's spend collector.

What is real: the apiserver, the operator (as its ServiceAccount), the router processes and the stand-in
cloud provider, the EndpointSlices the operator discovers the routers by, status.access and the spend
ConfigMap. What is not: the kubelet copying the ConfigMap into the router pods (the test copies its data
into each router's spend file) and the router pods themselves (kwok pods run no process; the routers run
on loopback, published under a host name the operator maps to 127.0.0.1, as the autoscaler tests do).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import operatorkit as ok
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import PYTHON, Proc, free_port

from flotilla.api import messages

pytestmark = pytest.mark.cluster

FLEET = "gate"
HOST = "router.flotilla.test"
KEYS = {"web": "s3cret-web-key", "team": "s3cret-team-key"}
BUDGET = 0.00004  # a stand-in answer costs about $0.00003 at these prices: one request fits, two do not
PRICE = {"inputPerMTok": 2.0, "outputPerMTok": 8.0}


def _fleet(namespace: str, access: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "fallbacks": [
            {"name": "frontier", "provider": "openai-compatible", "baseURL": "http://cloud.invalid/v1",
             "model": "gpt-standin", "price": PRICE}
        ],
        "router": {"serviceType": "LoadBalancer"},
    }  # fmt: skip
    if access:
        spec["access"] = {
            "keys": [
                {"name": "web", "secretRef": {"name": "router-keys", "key": "web"}},
                {"name": "team", "secretRef": {"name": "router-keys", "key": "team"}, "cloudFallbacks": True,
                 "monthlyBudgetUSD": BUDGET, "onBudgetExhausted": "reject"},
                {"name": "later", "secretRef": {"name": "router-keys", "key": "not-there"}},
            ],
            "jwt": {"jwksURL": "https://idp.example/jwks.json", "issuer": "https://idp.example",
                    "audience": FLEET, "policies": [{"name": "partners", "tasks": ["general"]}]},
        }  # fmt: skip
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": spec,
    }


def _secret(namespace: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in KEYS.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "router-keys", "namespace": namespace},
            "data": data}  # fmt: skip


def _publish(namespace: str, name: str, port: int) -> None:
    """Router ``name`` (admin port ``port`` on loopback) as an endpoint of the fleet's admin Service."""
    ok.apply_doc({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{FLEET}-router-admin-{name}",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": f"{FLEET}-router-admin",
                       "endpointslice.kubernetes.io/managed-by": "flotilla-tests"},
        },
        "addressType": "FQDN",
        "ports": [{"name": "admin", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [HOST], "conditions": {"ready": True}}],
    })  # fmt: skip


def test_an_exposed_router_without_access_is_refused_by_the_apiserver(
    flotilla_crds: None, namespace: str
) -> None:
    done = ok.kubectl_try("apply", "-f", "-", stdin=json.dumps(_fleet(namespace, access=False)))
    assert done.returncode != 0
    assert messages.OPEN_EXPOSED_ROUTER in done.stderr


class Router:
    def __init__(self, name: str, config: dict[str, Any], tmp: Path) -> None:
        self.spend = tmp / f"{name}-spend.json"
        config = {**config, "access": {**config["access"], "spendFile": str(self.spend)}}
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port, self.admin_port = free_port(), free_port()
        argv = [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path), "--port", str(self.port),
                "--admin-port", str(self.admin_port), "--reload-interval", "0.2"]  # fmt: skip
        self.proc = Proc(name, argv, tmp, {"POD_NAME": f"{FLEET}-router-{name}"})
        self.proc.wait_http(f"http://127.0.0.1:{self.port}/readyz", 60)

    def ask(self, key: str) -> httpx.Response:
        body = {"model": "frontier", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
        headers = {"authorization": f"Bearer {key}"}
        return httpx.post(f"http://127.0.0.1:{self.port}/v1/chat/completions", json=body, headers=headers,
                          timeout=30)  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc("standin", [PYTHON, "-m", "flotilla.standin", "--port", str(port)], tmp_path)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def test_keys_are_rendered_hashed_and_replicas_share_one_budget(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path, cloud: str
) -> None:
    operator = ok.OperatorProcess(
        operator_kubeconfig, tmp_path, args=("--namespace", namespace),
        env={
            "FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{HOST}=127.0.0.1",
            "FLOTILLA_SPEND_INTERVAL": "0.5",
            "FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "cloud.invalid",  # the fallback's plain-http test host
        },
    )  # fmt: skip
    ok.apply_doc(_secret(namespace))
    ok.apply_doc(_fleet(namespace))
    operator.start()
    routers: list[Router] = []
    try:
        # The router config names the keys by sha256 only; the key whose Secret key is missing is left out.
        def rendered() -> dict[str, Any] | None:
            done = ok.kubectl_try("get", "configmap", f"{FLEET}-router", "-n", namespace, "-o", "json")
            return json.loads(done.stdout) if done.returncode == 0 else None

        config_map = ok.wait_until(rendered, 60, "the router ConfigMap")
        text = json.dumps(config_map)
        assert not any(key in text for key in KEYS.values())
        config = yaml.safe_load(config_map["data"]["router.yaml"])
        hashes = {k["name"]: k["sha256"] for k in config["access"]["keys"]}
        assert hashes == {n: hashlib.sha256(v.encode()).hexdigest() for n, v in KEYS.items()}
        jwt = config["access"]["jwt"]
        assert jwt["jwksURL"] == "https://idp.example/jwks.json" and jwt["audience"] == FLEET
        assert [p["name"] for p in jwt["policies"]] == ["partners"]

        def access_condition() -> dict[str, Any] | None:
            fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
            found = [c for c in fleet.get("status", {}).get("conditions", []) if c["type"] == "AccessReady"]
            return found[0] if found else None

        condition = ok.wait_until(access_condition, 60, "AccessReady")
        assert condition["status"] == "False" and "key later" in condition["message"]
        events = ok.get_json("events", "-n", namespace, "--field-selector", "reason=AccessKeysMissing")
        assert events["items"], "no Warning Event for the missing key"

        # Two router replicas with the rendered access policy and the stand-in as the cloud.
        config["fallbacks"] = [{**config["fallbacks"][0], "baseURL": f"{cloud}/v1"}]
        routers = [Router(name, config, tmp_path) for name in ("a", "b")]
        for router in routers:
            _publish(namespace, router.proc.name, router.admin_port)

        def status_spend() -> float | None:
            access = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status", {}).get("access") or {}
            spent = {k["name"]: k["spentUSD"] for k in access.get("keys", [])}
            return spent.get("team")

        def sync_files(expected: float) -> None:
            """Play the kubelet: copy the spend ConfigMap into every router's spend file."""

            def current() -> str | None:
                done = ok.kubectl_try("get", "configmap", f"{FLEET}-router-spend", "-n", namespace, "-o",
                                      "json")  # fmt: skip
                if done.returncode != 0:
                    return None
                data: str = json.loads(done.stdout)["data"]["spend.json"]
                return data if json.loads(data)["totals"].get("team", 0) == pytest.approx(expected) else None

            data = ok.wait_until(current, 30, f"the spend ConfigMap at ${expected}")
            for router in routers:
                router.spend.write_text(data)
            time.sleep(0.6)  # the routers poll the file every 0.2 s here

        key = KEYS["team"]
        first = routers[0].ask(key)
        assert first.status_code == 200, first.text
        spent_a = float(first.headers["x-flotilla-cost-usd"])
        assert 0 < spent_a < BUDGET
        ok.wait_until(lambda: status_spend() == pytest.approx(spent_a), 30, "status.access to count router a")
        sync_files(spent_a)
        second = routers[1].ask(key)  # b knows a's spend, still under the budget
        assert second.status_code == 200, second.text
        both = spent_a + float(second.headers["x-flotilla-cost-usd"])
        assert both > BUDGET
        ok.wait_until(lambda: status_spend() == pytest.approx(both), 30, "status.access to count both")
        sync_files(both)
        refused = routers[0].ask(key)  # a alone spent less than the budget: it knows b's spend
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted"
        assert int(refused.headers["retry-after"]) > 0
        listed = ok.kubectl("get", "mf", FLEET, "-n", namespace)
        assert "SPEND" in listed and "team=$" in listed

        # An operator restart resumes from status: the same counters are not counted again; and the router
        # config is not rewritten (a child event before the resume must not render it without the hashes).
        version = ok.get_json("configmap", f"{FLEET}-router", "-n", namespace)["metadata"]["resourceVersion"]
        operator.stop()
        operator.start()
        time.sleep(3)  # several collector ticks
        assert status_spend() == pytest.approx(both)
        after = ok.get_json("configmap", f"{FLEET}-router", "-n", namespace)
        assert after["metadata"]["resourceVersion"] == version
        assert {k["name"] for k in yaml.safe_load(after["data"]["router.yaml"])["access"]["keys"]} == set(
            KEYS
        )
        status_keys = {
            k["name"] for k in ok.get_json("modelfleet", FLEET, "-n", namespace)["status"]["access"]["keys"]
        }
        assert "partners" in status_keys  # JWT policies are accounted like keys

        # Rotation: a new value for one key and the missing key created reach the router config through
        # the access timer alone (the fleet itself does not change), within its 30 s period.
        rotated = {**KEYS, "team": "r0tated-team-key", "not-there": "s3cret-later-key"}
        ok.apply_doc({**_secret(namespace), "data": {k: base64.b64encode(v.encode()).decode()
                                                     for k, v in rotated.items()}})  # fmt: skip
        expected = {
            "web": hashlib.sha256(KEYS["web"].encode()).hexdigest(),
            "team": hashlib.sha256(b"r0tated-team-key").hexdigest(),
            "later": hashlib.sha256(b"s3cret-later-key").hexdigest(),
        }

        def rotated_hashes() -> dict[str, str] | None:
            current = ok.get_json("configmap", f"{FLEET}-router", "-n", namespace)
            keys = yaml.safe_load(current["data"]["router.yaml"])["access"]["keys"]
            found = {k["name"]: k["sha256"] for k in keys}
            return found if found == expected else None

        ok.wait_until(rotated_hashes, 75, "the rotated keys in the router config")
        ok.wait_until(lambda: (c := access_condition()) and c["status"] == "True" and c, 30, "AccessReady")
    finally:
        for router in routers:
            router.proc.stop()
        operator.stop()
