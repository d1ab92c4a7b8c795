"""Rendered `engine: kuberay` packs against a real kube-apiserver with KubeRay's own RayService CRD (the
pinned ray-operator module's config/crd/bases/ray.io_rayservices.yaml, fetched by `e2e/cluster build`):
the golden RayServices pass a server-side dry run with strict field validation (and their head pod
templates the `restricted` Pod Security Standard), and broken ones are rejected with the field named.
No KubeRay operator runs: this checks the objects, not Ray.

Marked `cluster`: runs on the local cluster (root conftest.py brings it up).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from render_dryrun import dry_run, kubectl, restricted_namespace

from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans
from flotilla.render import rayservice

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
FLEET = ROOT / "tests" / "golden" / "kuberay" / "fleet.yaml"
CRD = "rayservices.ray.io"


def _wait_established(timeout: float = 60) -> None:
    """Retried: on a just-created CRD `kubectl wait` fails at once while it has no conditions yet."""
    deadline = time.monotonic() + timeout
    while True:
        waited = kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=10s")
        if waited.returncode == 0:
            return
        assert time.monotonic() < deadline, waited.stderr
        time.sleep(0.5)


@pytest.fixture(scope="module")
def rayservice_crd(kubeconfig: Path) -> Iterator[None]:
    """KubeRay's RayService CRD, installed for this module and deleted after (kept when it was there)."""
    sys.path.insert(0, str(ROOT / "e2e"))
    from clusterlib import settings

    path = settings.load().kuberay_crd
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only kuberay-crds` first")
    there = kubectl("get", "crd", CRD).returncode == 0
    if not there:
        crd = yaml.safe_load(path.read_text())
        crd["metadata"].setdefault("labels", {})["flotilla.dev/test"] = "kuberay-crds"
        done = kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(crd))
        assert done.returncode == 0, done.stderr
    _wait_established()
    yield
    if not there:
        kubectl("delete", "crd", CRD, "--timeout=90s")


@pytest.fixture(scope="module")
def namespace(kubeconfig: Path) -> Iterator[str]:
    with restricted_namespace("flotilla-kuberay") as name:
        yield name


def _rendered(namespace: str) -> list[dict[str, Any]]:
    body = yaml.safe_load(FLEET.read_text())
    body["metadata"]["namespace"] = namespace
    fleet = ModelFleet.from_body(body)
    return rayservice.render_rayservices(fleet, plans.plan(fleet.spec))


def _dry_run(namespace: str, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return dry_run(namespace, objects, server_side=True)


def test_rendered_rayservices_pass_the_apiserver(rayservice_crd: None, namespace: str) -> None:
    objects = _rendered(namespace)
    assert len(objects) == 2
    done = _dry_run(namespace, objects)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("serverside-applied (server dry run)") == len(objects), done.stdout


def test_the_head_pod_template_meets_the_restricted_pod_security_standard(
    rayservice_crd: None, namespace: str
) -> None:
    """KubeRay makes the head pod from this template (adding its own command and env): as a Pod it passes
    the apiserver with no `restricted` Pod Security warning, as every Flotilla pod does."""
    pods = []
    for service in _rendered(namespace):
        template = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
        metadata = {"name": f"{service['metadata']['name']}-head", **template["metadata"]}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
    done = _dry_run(namespace, pods)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_a_number_where_the_crd_wants_a_string_is_rejected(rayservice_crd: None, namespace: str) -> None:
    broken = copy.deepcopy(_rendered(namespace)[0])
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 4
    done = _dry_run(namespace, [broken])
    assert done.returncode != 0
    assert "rayStartParams.num-cpus" in done.stderr, done.stderr


def test_a_head_group_without_a_pod_template_is_rejected(rayservice_crd: None, namespace: str) -> None:
    broken = copy.deepcopy(_rendered(namespace)[0])
    del broken["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    done = _dry_run(namespace, [broken])
    assert done.returncode != 0
    assert "headGroupSpec.template" in done.stderr and "Required value" in done.stderr, done.stderr


def test_a_misspelt_field_is_rejected(rayservice_crd: None, namespace: str) -> None:
    broken = copy.deepcopy(_rendered(namespace)[0])
    broken["spec"]["serveConfigV3"] = broken["spec"].pop("serveConfigV2")
    done = _dry_run(namespace, [broken])
    assert done.returncode != 0
    assert "serveConfigV3" in done.stderr, done.stderr
