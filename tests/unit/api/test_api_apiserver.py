"""Parity on a real kube-apiserver: every invalid spec pydantic rejects, the generated CRD rejects too, with
the same message (CEL rules) or the apiserver's own schema message (enum, pattern, unknown field).

Marked `cluster`: runs on the local cluster (root conftest.py brings it up); server-side dry runs only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fleets import BASE, fleet
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from test_api_router_parity import DIST, REACHABLE, VALIDATORS
from test_api_validation import CODER, INVALID, SCALE_TO_ZERO

from clusterlib.waiting import wait_until
from flotilla.api import fleet as fleet_api
from flotilla.api import messages
from flotilla.api.commands import dump_crds

pytestmark = pytest.mark.cluster

# Cases the schema (not CEL) rejects: the apiserver words them itself.
SCHEMA_MESSAGES = {
    "unknown runtime": 'Unsupported value: "tgi": supported values: "vllm", "llamacpp"',
    "unknown provider": 'Unsupported value: "gemini"',
    "bad duration": "spec.routing.coldStartBudget in body should match",
    "model name not a DNS label": "spec.models[1].name in body should match",
    "unknown field (typo)": 'unknown field "spec.models[0].replica"',
    "unknown autoscaling mode": (
        'Unsupported value: "kpa": supported values: "builtin", "hpa", "keda", "none"'
    ),
    "bad scale-down delay": "spec.models[0].autoscaling.scaleDownDelay in body should match",
    "shared-secret JWT algorithm": 'spec.access.jwt.algorithms[0]: Unsupported value: "HS256"',
    "train method not lora": 'Unsupported value: "full": supported values: "lora"',
}


@pytest.fixture(scope="module")
def objects(kubeconfig: Path) -> client.CustomObjectsApi:
    subprocess.run(
        ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-"],
        input=dump_crds(), text=True, check=True, capture_output=True,
    )  # fmt: skip
    name = f"{fleet_api.PLURAL}.{fleet_api.GROUP}"
    # Retried: on a fresh apiserver `kubectl wait` fails at once while the new CRD has no conditions yet.
    wait = ["kubectl", "wait", "--for=condition=Established", f"crd/{name}", "--timeout=10s"]
    wait_until(lambda: subprocess.run(wait, capture_output=True).returncode == 0, 60, "the CRD Established")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return client.CustomObjectsApi(api)


def _dry_run_create(objects: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    body = {**body, "metadata": {**body["metadata"], "namespace": "default"}}
    created: dict[str, Any] = objects.create_namespaced_custom_object(  # type: ignore[assignment]
        fleet_api.GROUP, fleet_api.VERSION, "default", fleet_api.PLURAL, body,
        dry_run="All", field_validation="Strict",
    )  # fmt: skip
    return created


def test_valid_fleet_is_accepted_and_defaulted(objects: client.CustomObjectsApi) -> None:
    created = _dry_run_create(objects, BASE)
    pocket = created["spec"]["models"][1]
    assert pocket["replicas"] == {"min": 1}
    assert pocket["tasks"] == ["chat"]
    assert created["spec"]["routing"]["coldStartBudget"] == "2s"
    assert fleet_api.ModelFleet.from_body(created).spec == fleet_api.ModelFleet.from_body(BASE).spec


def test_an_exposed_router_with_access_is_accepted(objects: client.CustomObjectsApi) -> None:
    access = {"keys": [{"name": "web", "secretRef": {"name": "keys", "key": "web"}, "monthlyBudgetUSD": 5}]}
    created = _dry_run_create(
        objects, fleet(spec__router={"serviceType": "LoadBalancer"}, spec__access=access)
    )
    key = created["spec"]["access"]["keys"][0]
    assert (key["cloudFallbacks"], key["onBudgetExhausted"]) == (False, "downgrade")


def test_a_capturing_fleet_is_accepted_and_defaulted(objects: client.CustomObjectsApi) -> None:
    task = {"name": "code", "distillation": {"capture": {"sample": 0.2, "from": "cloud"}}}
    body = fleet(spec__distillation={**DIST, "redact": ["ACME-\\d+"]}, spec__routing__tasks=[task])
    created = _dry_run_create(objects, body)
    sink = created["spec"]["distillation"]["sink"]["s3"]
    assert (sink["prefix"], sink["region"], created["spec"]["distillation"]["spoolMiB"]) == (
        "flotilla-traces/",
        "us-east-1",
        256,
    )
    assert fleet_api.ModelFleet.from_body(created).spec == fleet_api.ModelFleet.from_body(body).spec


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_apiserver_rejects_what_pydantic_rejects(objects: client.CustomObjectsApi, case: str) -> None:
    changes, message = INVALID[case]
    with pytest.raises(ApiException) as caught:
        _dry_run_create(objects, fleet(**changes))
    assert caught.value.status in (400, 422)  # 400: strict decoding (unknown field), 422: validation
    assert SCHEMA_MESSAGES.get(case, message) in json.loads(str(caught.value.body))["message"]


@pytest.mark.parametrize("case", list(SCALE_TO_ZERO), ids=list(SCALE_TO_ZERO))
def test_apiserver_accepts_scale_to_zero_except_for_hpa(objects: client.CustomObjectsApi, case: str) -> None:
    mode = SCALE_TO_ZERO[case][0]
    changes: dict[str, Any] = {f"{CODER}__replicas": {"min": 0, "max": 2}}
    if mode:
        changes[f"{CODER}__autoscaling"] = {"mode": mode}
    created = _dry_run_create(objects, fleet(**changes))
    scaling = created["spec"]["models"][0]["autoscaling"]
    assert scaling["mode"] == (mode or "builtin")
    assert (scaling["window"], scaling["scaleUpDelay"], scaling["scaleDownDelay"]) == ("30s", "0s", "300s")


ROUTER_CASES = {case: (changes, message) for case, (changes, message) in REACHABLE.items()}
ROUTER_CASES.update({case: (changes, message) for case, (changes, message, _) in VALIDATORS.items()})


@pytest.mark.parametrize("case", list(ROUTER_CASES), ids=list(ROUTER_CASES))
def test_apiserver_rejects_what_the_router_would_unless_only_the_operator_can(
    objects: client.CustomObjectsApi, case: str
) -> None:
    """test_api_router_parity's fleets: the apiserver refuses each, except those only Python can check
    (messages.OPERATOR_ONLY: the operator refuses them, tests/integration/test_operator_validation.py)."""
    changes, message = ROUTER_CASES[case]
    if message in messages.OPERATOR_ONLY:
        _dry_run_create(objects, fleet(**changes))  # accepted here: the operator is the one to refuse it
        return
    with pytest.raises(ApiException) as caught:
        _dry_run_create(objects, fleet(**changes))
    assert caught.value.status in (400, 422)
