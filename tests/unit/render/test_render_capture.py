"""Rendering distillation capture: the router config's sink and tasks, the sink's credentials only as
secretKeyRef env, the spool emptyDir, a volume sink's claim, and the policy opt-out."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flotilla import errors
from flotilla.api import messages
from flotilla.api.fleet import ModelFleet
from flotilla.render import naming
from flotilla.render.fleet import render_fleet

S3 = {
    "endpoint": "https://s3.example",
    "bucket": "traces",
    "accessKeyID": {"name": "s3", "key": "id"},
    "secretAccessKey": {"name": "s3", "key": "secret"},
}


def _fleet(distillation: dict[str, Any] | None, task: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "fallbacks": [{"name": "cloud", "provider": "openai-compatible", "baseURL": "https://c.example/v1",
                       "model": "m"}],
        "routing": {"tasks": [{"name": "chat", **(task or {})}]},
    }  # fmt: skip
    if distillation is not None:
        spec["distillation"] = distillation
    return {"metadata": {"name": "f", "namespace": "ai"}, "spec": spec}


def _rendered(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render_fleet(ModelFleet.from_body(body))}
    config = yaml.safe_load(objects[("ConfigMap", "f-router")]["data"]["router.yaml"])
    return config, objects[("Deployment", "f-router")]["spec"]["template"]["spec"]


def test_s3_sink() -> None:
    capture = {"distillation": {"capture": {"sample": 0.2, "from": "cloud"}}}
    config, pod = _rendered(_fleet({"sink": {"s3": S3}, "redact": ["ACME-\\d+"], "spoolMiB": 64}, capture))
    assert config["tasks"][0]["capture"] == {"sample": 0.2, "from": "cloud"}
    assert config["capture"]["s3"] == {
        "endpoint": "https://s3.example", "bucket": "traces", "prefix": "flotilla-traces/",
        "region": "us-east-1", "accessKeyEnv": naming.SINK_ACCESS_KEY_ENV,
        "secretKeyEnv": naming.SINK_SECRET_KEY_ENV,
    }  # fmt: skip
    assert config["capture"]["redact"] == ["ACME-\\d+"]
    assert config["capture"]["spoolMaxBytes"] == 64 * 2**20
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env[naming.SINK_SECRET_KEY_ENV]["valueFrom"] == {"secretKeyRef": {"name": "s3", "key": "secret"}}
    assert {"name": "spool", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert pod["terminationGracePeriodSeconds"] == 60


def test_volume_sink_and_no_capture() -> None:
    config, pod = _rendered(_fleet({"sink": {"volume": {"claimName": "traces", "subPath": "f"}}}))
    assert config["capture"]["directory"] == {"path": naming.TRACES_MOUNT_DIR}
    assert config["tasks"][0]["capture"] is None
    assert {"name": "traces", "persistentVolumeClaim": {"claimName": "traces"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "traces", "mountPath": naming.TRACES_MOUNT_DIR, "subPath": "f"} in mounts
    config, pod = _rendered(_fleet(None))
    assert config["capture"] is None and "terminationGracePeriodSeconds" not in pod


@pytest.mark.parametrize(
    ("distillation", "task", "message"),
    [
        (None, {"distillation": {"capture": {"sample": 0.1}}}, messages.CAPTURE_WITHOUT_SINK),
        ({"sink": {}}, {}, messages.SINK_ONE),
        ({"sink": {"s3": {**S3, "bucket": "Traces!"}}}, {}, messages.SINK_BUCKET),
        ({"sink": {"s3": S3}, "redact": ["(unclosed"]}, {}, messages.INVALID_REDACT_PATTERN),
    ],
)
def test_refused(distillation: dict[str, Any] | None, task: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidSpecError) as caught:
        ModelFleet.from_body(_fleet(distillation, task))
    assert message in str(caught.value)
