"""Every object of every golden case is a valid Kubernetes object: a real kube-apiserver accepts it
(server-side dry run, strict field validation, so a misspelt field fails), and its pod templates meet the
`restricted` Pod Security Standard (the namespace warns on workloads that do not).

Marked `cluster`: runs on the local cluster (root conftest.py brings it up).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from render_dryrun import dry_run, restricted_namespace

from flotilla.api.fleet import ModelFleet
from flotilla.render.fleet import render_fleet

pytestmark = pytest.mark.cluster

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists())


@pytest.fixture(scope="module")
def namespace(kubeconfig: Path) -> Iterator[str]:
    with restricted_namespace("flotilla-render") as name:
        yield name


@pytest.mark.parametrize("case", CASES)
def test_rendered_objects_pass_the_apiserver(namespace: str, case: str) -> None:
    text = (GOLDEN / case / "input.yaml").read_text(encoding="utf-8")
    objects = []
    for doc in yaml.safe_load_all(text):
        doc["metadata"]["namespace"] = namespace
        objects += render_fleet(ModelFleet.from_body(doc))
    done = dry_run(namespace, objects)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # PodSecurity `restricted` warnings
    assert done.stdout.count("(server dry run)") == len(objects)
