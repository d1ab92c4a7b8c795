"""The training Job runs for real on the real node `real-0` and produces an adapter that llama.cpp serves.

The stand-in teacher (`flotilla.standin --teacher`, over HTTP) answers 120 math prompts; its replies go
through the router's own capture pipeline (`flotilla.capturing.pipeline.Pipeline`, a directory sink) into a
hostPath PersistentVolume, in the layout a router writes (`<fleet>/<date>/<replica>-<segment>.jsonl`). The
fleet's volume sink is a claim bound to that volume; the base model is the Gemma 3 270M GGUF on a second
hostPath volume behind a `pvc://` source. The Job is exactly what the operator renders
(`render_training_job`): export (flotilla image), fine-tune (`flotilla-finetune`, built and imported into
the node's containerd by `scripts/build-images finetune --load`), publish to the volume; it lands on the
real node through the base model's nodeSelector and tolerations, which the Job inherits. The adapter it
writes to `adapters/<fleet>/math/v1/` is then loaded by ggml-org's llama-server next to the unchanged base,
which answers held-out prompts in the teacher's `#### <n>` format far more often than the base.

Marked `finetune` (deselected by default: a ~6 GB image) and `realnode`:
`pytest -m finetune tests/node/test_training_real_node.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from clusterlib import nodeconfig
from clusterlib.sessions import RealNode
from demolib import hostdirs, installing
from flotilla.api.fleet import ModelFleet
from flotilla.api.routerconfig import CaptureSettings, DirectorySink, S3Sink
from flotilla.capturing import pipeline, traces
from flotilla.render import training
from flotilla.render.settings import RenderSettings
from flotilla.runtimes import base

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distilling"))  # the teacher and llama kits
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # kubectl helpers
from distilkit import Teacher, answers, format_share, math_rows, serve
from operatorkit import get_json, kubectl, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the SeaweedFS process
from storekit import ACCESS_KEY, BUCKET, SECRET_KEY, Store

pytestmark = [pytest.mark.realnode, pytest.mark.finetune, pytest.mark.llamacpp, pytest.mark.timeout(3600)]

GGUF = hostdirs.GGUF
FLEET, TASK, SUB_PATH = "tutor", "math", "traces"
TRAIN, HELD_OUT, STEPS = 120, 40, 15
JOB_TIMEOUT_S = 1500  # ~2 min quiet; 28-33 s a step on a busy 2-core machine, plus loading the base


def _fleet(namespace: str, node: RealNode, sink: dict[str, Any]) -> ModelFleet:
    """A fleet whose task `math` trains its llama.cpp model `pocket` on the traces in ``sink``; the model
    (and so its training Job) is placed on the real node."""
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [
                {
                    "name": "pocket",
                    "runtime": "llamacpp",
                    "source": {"uri": f"pvc://gemma/{GGUF.name}"},
                    "nodeSelector": node.node_selector,
                    "tolerations": [node.toleration],
                }
            ],
            "fallbacks": [
                {
                    "name": "teacher",
                    "provider": "openai-compatible",
                    "baseURL": "http://teacher:8080/v1",
                    "model": "teacher",
                }
            ],
            "routing": {
                "tasks": [
                    {
                        "name": TASK,
                        "models": ["pocket"],
                        "fallbacks": ["teacher"],
                        "distillation": {
                            "capture": {"sample": 1, "from": "cloud"},
                            "train": {
                                "base": "pocket",
                                "when": {"traces": 100},
                                "steps": STEPS,
                                "image": "flotilla-finetune:0.1.0",
                            },
                        },
                    }
                ]
            },
            "distillation": {"sink": sink},
        },
    }
    return ModelFleet.from_body(body)


def _host_volume(namespace: str, claim: str, directory: Path, mode: str) -> str:
    """A hostPath PersistentVolume over `directory`, pre-bound to claim `claim`; returns the PV's name."""
    name = f"{claim}-{namespace}"
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": [mode], "storageClassName": ""}
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(directory), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    claim_doc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": [mode],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    for doc in (volume, claim_doc):
        kubectl("apply", "-f", "-", stdin=json.dumps(doc))
    return name


def _capture(
    settings: CaptureSettings, env: dict[str, str], teacher: Teacher, prompts: Sequence[str]
) -> None:
    """Ask the teacher each prompt and hand its reply to the router's capture pipeline, which spools the
    traces and uploads them to the sink as a router replica does."""
    metrics = pipeline.CaptureMetrics(CollectorRegistry())

    async def run() -> None:
        sink = pipeline.make_sink(settings, env)
        capture = pipeline.Pipeline(settings, FLEET, "router-0", sink, metrics)
        await capture.start()
        async with httpx.AsyncClient(timeout=30) as http:
            for prompt in prompts:
                messages = [{"role": "user", "content": prompt}]
                started = time.perf_counter()
                reply = await http.post(
                    f"{teacher.url}/v1/chat/completions",
                    json={"model": "teacher", "messages": messages, "max_tokens": 12},
                )
                reply.raise_for_status()
                capture.offer(traces.Raw(
                    fleet=FLEET, task=TASK, kind="chat", model="teacher", cloud=True, fell_back=True,
                    reason="fallback:unavailable", key=None, score=1.0, latency=time.perf_counter() - started,
                    wall_time=time.time(), stream=False, messages=messages, body=reply.content,
                ))  # fmt: skip
        await capture.close()

    asyncio.run(run())


def _finished(namespace: str, name: str) -> dict[str, Any] | None:
    job: dict[str, Any] = get_json("job", name, "-n", namespace)
    done = {c["type"] for c in job.get("status", {}).get("conditions", []) if c["status"] == "True"}
    return job if done & {"Complete", "Failed"} else None


def _logs(namespace: str, job: str) -> str:
    out = []
    for container in ("export", "finetune", "publish"):
        text = kubectl("logs", f"job/{job}", "-n", namespace, "-c", container, "--tail=40", check=False)
        out.append(f"--- {container}\n{text}")
    return "\n".join(out)


@dataclass
class TraceSink:
    """Where the test captures traces and the Job reads them and publishes its adapter."""

    spec: dict[str, Any]
    """The fleet's `spec.distillation.sink`."""
    capture: CaptureSettings
    env: dict[str, str]
    count: Callable[[], int]
    """Traces stored."""
    fetch: Callable[[str, Path], None]
    """Copy a published file (its key below the sink's prefix) to a local path."""


@pytest.fixture
def host_dirs() -> Iterator[tuple[Path, Path]]:
    """The sink's directory (written by the pod's uid 1000) and the base model's (a copy of the GGUF)."""
    with hostdirs.training_dirs("flotilla", SUB_PATH) as dirs:
        yield dirs


@pytest.fixture(params=["volume", "s3"])
def trace_sink(
    request: pytest.FixtureRequest, namespace: str, host_dirs: tuple[Path, Path], tmp_path: Path
) -> Iterator[TraceSink]:
    """volume: a hostPath volume on the real node (as the router pod's uid writes it); s3: a real SeaweedFS
    on the node's bridge address, its keys in a Secret (the Job's export reads it, its publish writes it
    with `flotilla objects cp`)."""
    spool = str(tmp_path / "spool")
    if request.param == "volume":
        root = host_dirs[0] / SUB_PATH

        def count() -> int:
            for path in [root, *root.rglob("*")]:  # as the router pod's uid writes them: the sink writes
                os.chown(path, base.RUN_AS_USER, base.RUN_AS_USER)  # 0600 files, the Job's uid reads
            return sum(p.read_bytes().count(b"\n") for p in (root / FLEET).rglob("*.jsonl"))

        yield TraceSink(
            spec={"volume": {"claimName": "traces", "subPath": SUB_PATH}},
            capture=CaptureSettings(directory=DirectorySink(path=str(root)), spool_dir=spool),
            env={},
            count=count,
            fetch=lambda key, path: shutil.copyfile(root / key, path),
        )
        return
    (tmp_path / "store" / "logs").mkdir(parents=True)
    store = Store(tmp_path / "store", tmp_path / "store" / "logs", host=nodeconfig.NODE_IP)
    store.start()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sink", "namespace": namespace},
              "stringData": {"id": ACCESS_KEY, "secret": SECRET_KEY}}  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    prefix = f"{SUB_PATH}/"
    try:
        yield TraceSink(
            spec={
                "s3": {
                    "endpoint": store.url,
                    "bucket": BUCKET,
                    "prefix": prefix,
                    "accessKeyID": {"name": "sink", "key": "id"},
                    "secretAccessKey": {"name": "sink", "key": "secret"},
                }
            },
            capture=CaptureSettings(s3=S3Sink.model_validate(store.sink(prefix)), spool_dir=spool),
            env=store.env(),
            count=lambda: len(store.lines(f"{prefix}{FLEET}/")),
            fetch=lambda key, path: store.client().download_file(BUCKET, prefix + key, str(path)),
        )
    finally:
        store.stop()


def test_training_job_runs_on_the_real_node_and_its_adapter_answers_like_the_teacher(
    real_node: RealNode, namespace: str, host_dirs: tuple[Path, Path], trace_sink: TraceSink, tmp_path: Path
) -> None:
    weights = host_dirs[1]
    started = time.monotonic()
    rows = installing.build_images(real_node.containerd_socket, ["finetune"])
    print(f"\nimages: {rows} ({time.monotonic() - started:.0f} s)", file=sys.stderr)

    prompts = [r["prompt"] for r in math_rows()]
    teacher = Teacher(tmp_path)
    try:
        _capture(trace_sink.capture, trace_sink.env, teacher, prompts[:TRAIN])
    finally:
        teacher.stop()
    assert trace_sink.count() == TRAIN

    volumes = [_host_volume(namespace, "gemma", weights, "ReadOnlyMany")]
    if "volume" in trace_sink.spec:
        volumes.append(_host_volume(namespace, "traces", host_dirs[0], "ReadWriteOnce"))
    fleet = _fleet(namespace, real_node, trace_sink.spec)
    try:
        job = training.render_training_job(fleet, TASK, 1, RenderSettings())
        kubectl("apply", "-f", "-", stdin=json.dumps(job))
        name = job["metadata"]["name"]
        try:
            done = wait_until(lambda: _finished(namespace, name), JOB_TIMEOUT_S, f"Job {name} finished", 5)
        except AssertionError:
            pods = kubectl("get", "pods", "-n", namespace, "-o", "wide")
            print(pods, _logs(namespace, name), file=sys.stderr)
            raise
        logs = _logs(namespace, name)
        print(logs, file=sys.stderr)
        assert done["status"].get("succeeded") == 1, logs
        (pod,) = get_json("pods", "-n", namespace, "-l", f"job-name={name}")["items"]
        assert pod["spec"]["nodeName"] == real_node.name
        status = done["status"]
        print(f"Job {name}: {status['startTime']} -> {status['completionTime']}", file=sys.stderr)
    finally:
        for volume in volumes:
            kubectl("delete", "pv", volume, "--ignore-not-found", "--wait=false", check=False)

    published = training.adapter_prefix(fleet, TASK, 1)
    out = tmp_path / "published"
    out.mkdir()
    for name in ("manifest.json", "adapter.gguf"):
        trace_sink.fetch(f"{published}{name}", out / name)
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"manifest: {manifest}", file=sys.stderr)
    assert manifest["method"] == "lora" and manifest["steps"] == STEPS
    assert 0 < manifest["examples"] <= TRAIN  # export holds ~10% out as eval.jsonl
    assert manifest["loss_after"] < manifest["loss_before"], manifest
    adapter = out / "adapter.gguf"
    assert adapter.stat().st_size > 1_000_000

    held_out = prompts[-HELD_OUT:]
    base_server = serve(tmp_path, None, "llama-base")
    try:
        before = answers(base_server, held_out)
    finally:
        base_server.stop()
    tuned_server = serve(tmp_path, adapter, "llama-tuned")
    try:
        after = answers(tuned_server, held_out)
    finally:
        tuned_server.stop()
    share_before, share_after = format_share(before), format_share(after)
    print(f"teacher's format: base {share_before:.0%}, tuned {share_after:.0%}", file=sys.stderr)
    assert share_before <= 0.1, before
    assert share_after >= 0.6 and share_after >= share_before + 0.5, after
