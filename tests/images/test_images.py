"""The images of images/, built by scripts/build-images and run in a real containerd (marker `images`).

The build is the real one (podman on the debootstrapped base; cached layers make a warm run take seconds)
and `--load` imports the images into a private containerd's k8s.io namespace, exactly as for the node.
Then the containers run with `ctr`: the Gemma image serves the model with the very command line the
operator renders, and the flotilla image's router answers a chat request by forwarding it there; the
flotilla-ray image serves a pack of two Gemma models with `flotilla pack-serve` (Ray Serve) under a
read-only root, and deploys the serveConfigV2 of a rendered RayService as KubeRay would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagekit
import pytest
import yaml

from flotilla.api import fleet as fleet_api
from flotilla.packing import plans
from flotilla.render import fleet as fleet_render
from flotilla.render import rayservice, routing, settings

pytestmark = pytest.mark.images

ROOT = Path(__file__).resolve().parents[2]
FLEET = Path(__file__).resolve().parent / "fleet.yaml"
KUBERAY_FLEET = ROOT / "tests" / "golden" / "kuberay" / "fleet.yaml"
GGUF = Path.home() / ".cache" / "flotilla" / "models" / "gemma-3-270m-q4_k_m.gguf"
FLOTILLA = "docker.io/library/flotilla:0.1.0"
LLAMACPP = "docker.io/library/flotilla-llamacpp:0.1.0"
GEMMA = "docker.io/library/flotilla-gemma3-270m:0.1.0"
RAY = "docker.io/library/flotilla-ray:0.1.0"
ALL = {FLOTILLA, LLAMACPP, GEMMA, RAY}


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[imagekit.Containerd]:
    daemon = imagekit.Containerd(tmp_path_factory.mktemp("containerd"))
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def built(containerd: imagekit.Containerd) -> list[dict[str, Any]]:
    """scripts/build-images --load into the private containerd; its summary rows."""
    command = [str(ROOT / "scripts" / "build-images"), "--load", "--json"]
    done = subprocess.run(
        [*command, "--containerd-address", containerd.address],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"scripts/build-images failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    print("\n".join(json.dumps(row) for row in rows), file=sys.stderr)  # sizes and times in the test log
    return rows


def test_every_image_is_loaded_into_containerd(
    built: list[dict[str, Any]], containerd: imagekit.Containerd
) -> None:
    listed = containerd.ctr("images", "ls", "-q").stdout.split()
    assert {row["image"] for row in built} == ALL
    assert set(listed) >= ALL


@pytest.mark.parametrize("image", [FLOTILLA, LLAMACPP, GEMMA, RAY])
def test_images_run_as_a_non_root_user(image: str, built: object, containerd: imagekit.Containerd) -> None:
    name = f"id-{image.rsplit('/', 1)[1].replace(':', '-').replace('.', '-')}"
    out = containerd.run(image, name, "id", "-u")
    assert out.strip() == "1000"


def test_flotilla_image_has_both_commands(built: object, containerd: imagekit.Containerd) -> None:
    assert containerd.run(FLOTILLA, "version", "flotilla", "--version").strip() == "flotilla 0.1.0"
    for command in ("operator", "router"):
        done = containerd.ctr("run", "--rm", FLOTILLA, f"help-{command}", "flotilla", command, "--help")
        assert f"usage: flotilla {command}" in done.stdout


def test_gemma_image_holds_the_weights(built: object, containerd: imagekit.Containerd) -> None:
    out = containerd.run(GEMMA, "weights", "stat", "-c", "%s", "/models/gemma-3-270m-q4_k_m.gguf")
    assert int(out.strip()) == GGUF.stat().st_size


def _rendered(port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model container the operator renders for tests/images/fleet.yaml with the chart's local-image
    settings, listening on 127.0.0.1:`port`; and the fleet's routing table."""
    fleet = fleet_api.ModelFleet.from_body(
        yaml.safe_load(FLEET.read_text()) | {"metadata": {"name": "local"}}
    )
    render = settings.load({"FLOTILLA_LLAMACPP_FLAVOR": "llama-cpp-python"})
    (deployment,) = [
        o
        for o in fleet_render.render_fleet(fleet, render)
        if o["kind"] == "Deployment" and "pocket" in o["metadata"]["name"]
    ]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    container["args"] = args
    table: dict[str, Any] = routing.render_router_config(fleet).to_wire()
    return container, table


def test_router_image_answers_through_the_gemma_image(
    built: object, containerd: imagekit.Containerd, tmp_path: Path
) -> None:
    model_port, router_port = imagekit.free_port(), imagekit.free_port()
    container, table = _rendered(model_port)
    assert container["image"] == "flotilla-gemma3-270m:0.1.0"
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    containerd.start_container(GEMMA, "gemma", [*container["command"], *container["args"]], env)
    try:
        probe = container["readinessProbe"]["httpGet"]["path"]
        url = f"http://127.0.0.1:{model_port}{probe}"
        imagekit.wait_http(url, 240, "the Gemma server's readiness", lambda: containerd.log("gemma"))
        for model in table["models"]:  # static endpoints instead of EndpointSlice discovery (no cluster)
            model.pop("service", None)
            model["endpoints"] = [f"http://127.0.0.1:{model_port}"]
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "router.yaml").write_text(yaml.safe_dump(table))
        command = ["flotilla", "router", "--config", "/etc/flotilla/router.yaml", "--port", str(router_port)]
        mount = f"type=bind,src={config_dir},dst=/etc/flotilla,options=rbind:ro"
        containerd.start_container(FLOTILLA, "router", command, {}, mounts=[mount])
        try:
            url = f"http://127.0.0.1:{router_port}/readyz"
            imagekit.wait_http(url, 120, "the router's /readyz", lambda: containerd.log("router"))
            status, body, headers = imagekit.http_json(
                f"http://127.0.0.1:{router_port}/v1/chat/completions",
                {
                    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                    "max_tokens": 24,
                },
            )
            stream = imagekit.http_lines(
                f"http://127.0.0.1:{router_port}/v1/chat/completions",
                {"messages": [{"role": "user", "content": "Count from one to five."}], "max_tokens": 16,
                 "stream": True},
            )  # fmt: skip
        finally:
            containerd.remove("router")
    finally:
        containerd.remove("gemma")
    assert status == 200
    assert headers["x-flotilla-model"] == "pocket"
    assert body["choices"][0]["message"]["content"].strip(), body
    assert body["usage"]["completion_tokens"] > 0
    events = [line.removeprefix("data: ") for line in stream if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [
        json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1] if json.loads(e)["choices"]
    ]
    assert len([d for d in deltas if d]) >= 2, events  # really streamed, token by token


def test_ray_image_serves_a_pack_of_two_models(
    built: object, containerd: imagekit.Containerd, tmp_path: Path
) -> None:
    """`flotilla pack-serve` in the flotilla-ray image, as a pod runs it (user 1000, read-only root, /tmp
    writable: Ray's session, its auth token under HOME=/tmp): two models of one GGUF, each answers a chat."""
    port = imagekit.free_port()
    config_dir = tmp_path / "pack"
    config_dir.mkdir()
    gguf = f"/models/{GGUF.name}"
    config = {
        "models": [
            {"name": "alpha", "gguf": gguf, "contextLength": 1024, "threads": 1, "chatFormat": "alpaca"},
            {"name": "beta", "gguf": gguf, "contextLength": 512, "threads": 1, "chatFormat": "alpaca"},
        ],
        "host": "127.0.0.1",
        "port": port,
    }
    (config_dir / "pack.yaml").write_text(yaml.safe_dump(config))
    mounts = [
        f"type=bind,src={config_dir},dst=/etc/flotilla,options=rbind:ro",
        f"type=bind,src={GGUF.parent},dst=/models,options=rbind:ro",
    ]
    command = ["flotilla", "pack-serve", "--config", "/etc/flotilla/pack.yaml"]
    containerd.start_container(RAY, "pack", command, {}, mounts=mounts)
    answers = {}
    try:
        url = f"http://127.0.0.1:{port}/v1/models"
        imagekit.wait_http(url, 420, "pack-serve's /v1/models", lambda: containerd.log("pack"))
        _, listed, _ = imagekit.http_json(url)
        for name in ("alpha", "beta"):
            status, body, _ = imagekit.http_json(
                f"http://127.0.0.1:{port}/{name}/v1/chat/completions",
                {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
                timeout=180,
            )
            answers[name] = (status, body)
        log = containerd.log_path("pack").read_text(errors="replace")
    finally:
        containerd.remove("pack")
    assert [m["id"] for m in listed["data"]] == ["alpha", "beta"]
    for name, (status, body) in answers.items():
        assert status == 200, body
        assert body["model"] == name
        assert body["choices"][0]["message"]["content"].strip(), body
        assert body["usage"]["completion_tokens"] > 0
    assert "flotilla pack-serve: 2 models" in log, log


def test_ray_image_deploys_a_rendered_rayservice_serve_config(
    built: object, containerd: imagekit.Containerd, tmp_path: Path
) -> None:
    """What KubeRay does with a rendered `engine: kuberay` pack, without KubeRay: `ray start --head` with the
    RayService's rayStartParams in the flotilla-ray image, then its serveConfigV2 submitted to Ray's
    dashboard (`serve deploy`, the REST API KubeRay calls). Three models with `maxLoaded: 2`, each answers."""
    fleet = fleet_api.ModelFleet.from_body(yaml.safe_load(KUBERAY_FLEET.read_text()))
    (service,) = [
        o
        for o in rayservice.render_rayservices(fleet, plans.plan(fleet.spec))
        if o["metadata"]["name"] == "local-small-2"
    ]
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]
    (container,) = head["template"]["spec"]["containers"]
    assert f"docker.io/library/{container['image']}" == RAY
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert {m["gguf"] for m in serve["applications"][0]["args"]["models"]} == {f"/models/{GGUF.name}"}
    port, gcs, dashboard, *others = (imagekit.free_port() for _ in range(10))
    serve["http_options"] = {"host": "127.0.0.1", "port": port}  # the pod's 0.0.0.0:8000, on the host network
    config_dir = tmp_path / "serve"
    config_dir.mkdir()
    (config_dir / "serve.yaml").write_text(yaml.safe_dump(serve))
    start = ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}"]
    start += [f"--{key}={value}" for key, value in head["rayStartParams"].items() if key != "dashboard-host"]
    start += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"]
    flags = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
             "metrics-export-port", "ray-client-server-port", "node-manager-port",
             "object-manager-port")  # fmt: skip
    start += [f"--{flag}={p}" for flag, p in zip(flags, others, strict=True)]
    script = (
        f"{' '.join(start)} && serve deploy --address http://127.0.0.1:{dashboard} /etc/flotilla/serve.yaml"
        " && exec sleep infinity"
    )
    mounts = [
        f"type=bind,src={config_dir},dst=/etc/flotilla,options=rbind:ro",
        f"type=bind,src={GGUF.parent},dst=/models,options=rbind:ro",
    ]
    containerd.start_container(RAY, "rayservice", ["bash", "-c", script], {}, mounts=mounts)
    answers = {}
    try:
        url = f"http://127.0.0.1:{port}/v1/models"
        imagekit.wait_http(
            url, 420, "the deployed serve config's /v1/models", lambda: containerd.log("rayservice")
        )
        for name in ("pocket", "pocket-short", "pocket-long"):  # the third unloads one (maxLoaded: 2)
            status, body, _ = imagekit.http_json(
                f"http://127.0.0.1:{port}/{name}/v1/chat/completions",
                {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 12},
                timeout=180,
            )
            answers[name] = (status, body)
        _, listed, _ = imagekit.http_json(url)
    finally:
        containerd.remove("rayservice")
    for name, (status, body) in answers.items():
        assert status == 200, body
        assert body["model"] == name
        assert body["usage"]["completion_tokens"] > 0
    loaded = {m["id"] for m in listed["data"] if m["loaded"]}
    assert loaded == {"pocket-short", "pocket-long"}, listed
