"""Every object of every golden case is a valid Kubernetes object: a real kube-apiserver accepts it
(server-side dry run, strict field validation, so a misspelt field fails), and its pod templates meet the
`restricted` Pod Security Standard (the namespace warns on workloads that do not).

Marked `cluster`: runs on the local cluster (root conftest.py brings it up).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flotilla.api.fleet import ModelFleet
from flotilla.render import documents
from flotilla.render.fleet import render_fleet

pytestmark = pytest.mark.cluster

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists())


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def namespace(kubeconfig: Path) -> Iterator[str]:
    name = f"flotilla-render-{uuid.uuid4().hex[:8]}"
    assert kubectl("create", "namespace", name).returncode == 0
    assert kubectl("label", "namespace", name, "pod-security.kubernetes.io/warn=restricted").returncode == 0
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("case", CASES)
def test_rendered_objects_pass_the_apiserver(namespace: str, case: str) -> None:
    text = (GOLDEN / case / "input.yaml").read_text(encoding="utf-8")
    objects = []
    for doc in yaml.safe_load_all(text):
        doc["metadata"]["namespace"] = namespace
        objects += render_fleet(ModelFleet.from_body(doc))
    done = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        stdin=documents.dump_all(objects),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # PodSecurity `restricted` warnings
    assert done.stdout.count("(server dry run)") == len(objects)
