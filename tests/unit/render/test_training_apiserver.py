"""The training Jobs of the golden fleet (tests/golden/training) are valid Kubernetes objects: a real
kube-apiserver accepts them (server-side dry run, strict field validation) in a namespace that warns on pods
breaking the `restricted` Pod Security Standard, with an S3 sink and with a volume sink.

Marked `cluster`: runs on the local cluster (root conftest.py brings it up). Nothing runs: dry runs only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from render_dryrun import dry_run, restricted_namespace

from flotilla.api.fleet import ModelFleet
from flotilla.render import training
from flotilla.render.settings import RenderSettings

pytestmark = pytest.mark.cluster

FLEET = Path(__file__).resolve().parents[2] / "golden" / "training" / "fleet.yaml"
SINKS: dict[str, dict[str, Any] | None] = {
    "s3": None,  # the golden fleet's own
    "volume": {"volume": {"claimName": "traces", "subPath": "fleet"}},
}


@pytest.fixture(scope="module")
def namespace(kubeconfig: Path) -> Iterator[str]:
    with restricted_namespace("flotilla-train") as name:
        yield name


@pytest.mark.parametrize("sink", list(SINKS))
def test_training_jobs_pass_the_apiserver(namespace: str, sink: str) -> None:
    body = yaml.safe_load(FLEET.read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = namespace
    if SINKS[sink] is not None:
        body["spec"]["distillation"]["sink"] = SINKS[sink]
    fleet = ModelFleet.from_body(body)
    jobs = [training.render_training_job(fleet, task, 1, RenderSettings()) for task in ("math", "chat")]
    done = dry_run(namespace, jobs)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # PodSecurity `restricted` warnings
    assert done.stdout.count("job.batch/") == len(jobs) == 2
    assert done.stdout.count("(server dry run)") == 2


GPU_FLEET = Path(__file__).resolve().parents[2] / "golden" / "training-gpu" / "fleet.yaml"


def test_gpu_training_jobs_pass_the_apiserver(namespace: str) -> None:
    """The Jobs of vllm bases (GPU LoRA: an nvidia.com/gpu limit, the hf-cache volume, the base's GPU
    placement): rendered, not run, so a dry run is the only check Kubernetes gives them here."""
    body = yaml.safe_load(GPU_FLEET.read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = namespace
    fleet = ModelFleet.from_body(body)
    jobs = [training.render_training_job(fleet, task, 1, RenderSettings()) for task in ("math", "code")]
    done = dry_run(namespace, jobs)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("(server dry run)") == 2
