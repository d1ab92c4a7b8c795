"""Trained versions in what the fleet serves (``render.trained``): the newest version that trained
successfully is the task's candidate, the newest promoted one its first model; from status alone, never
editing the spec; rendered as a model with the adapter and as the router's shadow."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import errors
from flotilla.api.fleet import ModelFleet
from flotilla.promoting import deciding
from flotilla.reconcile import desiring
from flotilla.render import trained
from flotilla.render.routing import render_router_config

S3_SINK = {"s3": {"endpoint": "http://store.example:8333", "bucket": "traces", "prefix": "t/",
                  "accessKeyID": {"name": "sink", "key": "id"},
                  "secretAccessKey": {"name": "sink", "key": "secret"}}}  # fmt: skip


def _body(
    training: list[tuple[int, str]] = (),  # type: ignore[assignment]
    candidates: list[tuple[int, str]] = (),  # type: ignore[assignment]
    sink: dict[str, Any] | None = None,
    base: str = "pocket",
    task: str = "math",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "f", "namespace": "ai"},
        "spec": {
            "models": [{"name": base, "source": {"uri": "pvc://models/g.gguf"}, "runtime": "llamacpp",
                        "args": ["--no-jinja", "--chat-template", "gemma"], "tasks": [task]},
                       {"name": "other", "source": {"uri": "pvc://models/o.gguf"}, "runtime": "llamacpp"}],
            "routing": {"tasks": [
                {"name": task,
                 "distillation": {"capture": {"sample": 1},
                                  "train": {"base": base, "when": {"traces": 10},
                                            "shadow": {"share": 0.5, "requests": 20, "promoteAt": 0.9}}}},
                {"name": "chat", "models": ["other"]},
            ]},
            "distillation": {"sink": sink or {"volume": {"claimName": "traces", "subPath": "sink"}}},
        },
        "status": {
            "training": [{"task": task, "version": v, "job": f"j{v}", "phase": p} for v, p in training],
            "candidates": [{"task": task, "model": trained.model_name(base, task, v), "state": s}
                           for v, s in candidates],
        },
    }  # fmt: skip
    return body


def _served(body: dict[str, Any]) -> ModelFleet:
    return trained.served(ModelFleet.from_body(body))


def _route(body: dict[str, Any], task: str = "math") -> dict[str, Any]:
    wire = render_router_config(_served(body)).to_wire()
    return next(dict(t) for t in wire["tasks"] if t["name"] == task)


def test_without_a_successful_version_the_fleet_is_served_as_written() -> None:
    for training in ([], [(1, "Running")], [(1, "Failed")], [(1, "Pending")]):
        fleet = ModelFleet.from_body(_body(training))
        assert trained.served(fleet) is fleet
    route = _route(_body([(1, "Running")]))
    assert route["models"] == ["pocket"] and route["shadow"] is None


def test_a_succeeded_version_is_the_base_with_its_adapter_and_the_tasks_candidate() -> None:
    body = _body([(1, "Succeeded")])
    fleet = _served(body)
    model = fleet.spec.model("pocket-math-v1")
    assert model.adapter is not None
    assert model.adapter.uri == "pvc://traces/sink/adapters/f/math/v1/adapter.gguf"
    assert (model.source.uri, model.runtime, model.args) == (
        "pvc://models/g.gguf", "llamacpp", ["--no-jinja", "--chat-template", "gemma"]
    )  # fmt: skip
    route = _route(body)
    assert route["models"] == ["pocket"]  # the candidate is mirrored, not routed
    shadow = route["shadow"]
    assert (shadow["model"], shadow["share"]) == ("pocket-math-v1", 0.5)
    assert shadow["score"] == "exact-final-answer"
    assert [m.name for m in ModelFleet.from_body(body).spec.models] == ["pocket", "other"]  # spec untouched
    assert "shadow" not in body["spec"]["routing"]["tasks"][0]["distillation"]


def test_the_candidate_gets_its_own_deployment_serving_the_adapter() -> None:
    body = _body([(2, "Succeeded")])
    names = {c["metadata"]["name"]: c for c in desiring.desired_children(body) if c["kind"] == "Deployment"}
    deployment = names["f-pocket-math-v2"]
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--lora") + 1].endswith("/adapters/f/math/v2/adapter.gguf")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"models", "traces"}


def test_an_s3_sink_adapter_is_downloaded_with_the_sinks_keys() -> None:
    body = _body([(1, "Succeeded")], sink=S3_SINK)
    model = _served(body).spec.model("pocket-math-v1")
    assert model.adapter is not None
    assert model.adapter.uri == "s3://traces/t/adapters/f/math/v1/adapter.gguf"
    assert model.adapter.endpoint == "http://store.example:8333"
    deployment = next(
        c for c in desiring.desired_children(body) if c["metadata"]["name"] == "f-pocket-math-v1"
    )
    init = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["initContainers"]}
    download = init["download-adapter"]
    assert download["command"][:4] == [
        "flotilla",
        "objects",
        "cp",
        "s3://traces/t/adapters/f/math/v1/adapter.gguf",
    ]
    env = {e["name"]: e.get("valueFrom") for e in download["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "sink", "key": "id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "sink", "key": "secret"}}


def test_a_newer_job_running_or_failing_keeps_the_version_being_evaluated() -> None:
    for phase in ("Running", "Failed"):
        route = _route(_body([(2, phase)], candidates=[(1, "Shadowing")]))
        assert route["shadow"]["model"] == "pocket-math-v1"


def test_a_promoted_version_serves_first_while_the_next_one_shadows_behind_it() -> None:
    body = _body([(2, "Succeeded")], candidates=[(1, "Promoted")])
    route = _route(body)
    assert route["models"] == ["pocket-math-v1", "pocket"]
    assert route["shadow"]["model"] == "pocket-math-v2"
    # v2 promoted in turn: first, v1 no longer served, nothing mirrored
    route = _route(_body([(2, "Succeeded")], candidates=[(1, "Promoted"), (2, "Promoted")]))
    assert route["models"] == ["pocket-math-v2", "pocket"] and route["shadow"] is None
    fleet = _served(_body([(2, "Succeeded")], candidates=[(1, "Promoted"), (2, "Promoted")]))
    assert "pocket-math-v1" not in [m.name for m in fleet.spec.models]


def test_a_rolled_back_version_leaves_the_promoted_one_first() -> None:
    route = _route(_body([(2, "Succeeded")], candidates=[(1, "Promoted"), (2, "RolledBack")]))
    assert route["models"] == ["pocket-math-v1", "pocket"] and route["shadow"] is None
    route = _route(_body([(1, "Succeeded")], candidates=[(1, "RolledBack")]))
    assert route["models"] == ["pocket"] and route["shadow"] is None


def test_the_promotion_rule_keeps_a_promoted_version_while_the_next_one_shadows() -> None:
    fleet = _served(_body([(2, "Succeeded")], candidates=[(1, "Promoted")]))
    entries, decisions = deciding.advance(fleet, [], "2026-12-07T10:00:00Z")
    assert [(e.model, e.state) for e in entries] == [("pocket-math-v1", "Promoted"),
                                                    ("pocket-math-v2", "Shadowing")]  # fmt: skip
    assert decisions == []
    # a hand-written candidate decided earlier is still dropped once the spec stops naming it
    body = _body([(1, "Succeeded")])
    body["status"]["candidates"] = [{"task": "math", "model": "other", "state": "Promoted"}]
    entries, _ = deciding.advance(_served(body), [], "2026-12-07T10:00:00Z")
    assert [(e.model, e.state) for e in entries] == [("pocket-math-v1", "Shadowing")]


def test_long_names_stay_model_names_and_unique() -> None:
    base, task = "a-rather-long-base-model-name", "multilingual-extraction"
    first = trained.model_name(base, task, 1)
    assert len(first) <= 32 and first.endswith("-v1") and first.startswith("a-rather")
    assert trained.model_name(base, task, 12) != trained.model_name(base, "other-long-task-name-here", 12)
    body = _body([(12, "Succeeded")], base=base, task=task)
    name = trained.model_name(base, task, 12)
    assert _served(body).spec.model(name).name == name
    assert trained.version_of(_served(body).spec.routing.tasks[0], name) == 12
    assert trained.version_of(_served(body).spec.routing.tasks[0], "pocket-math-v12") is None


def test_a_spec_model_with_a_versions_name_is_a_clear_error() -> None:
    body = _body([(1, "Succeeded")])
    body["spec"]["models"].append(
        {"name": "pocket-math-v1", "source": {"uri": "pvc://models/x.gguf"}, "runtime": "llamacpp"}
    )
    with pytest.raises(errors.InvalidSpecError, match=r"'pocket-math-v1' is already a model of spec\.models"):
        desiring.router_config(body)


def test_the_render_cache_key_follows_new_versions_and_decisions() -> None:
    assert desiring.decisions(_body([(1, "Running")])) == ""
    assert desiring.decisions(_body([(1, "Succeeded")])) == "math/v1=Succeeded"
    key = desiring.decisions(_body([(2, "Succeeded")], candidates=[(1, "Promoted")]))
    assert key == "math/pocket-math-v1=Promoted,math/v2=Succeeded"


VLLM_BASE = {"name": "qwen", "source": {"uri": "hf://Qwen/Qwen2.5-1.5B-Instruct"}, "runtime": "vllm",
             "accelerator": {"gpus": 1}, "servedModelName": "qwen-instruct", "tasks": ["math"]}  # fmt: skip


@pytest.mark.parametrize(
    ("sink", "uri"),
    [
        (None, "pvc://traces/sink/adapters/f/math/v1/"),
        (S3_SINK, "s3://traces/t/adapters/f/math/v1/"),
    ],
)
def test_a_vllm_bases_version_serves_the_peft_adapter_directory_through_vllms_lora_support(
    sink: dict[str, Any] | None, uri: str
) -> None:
    body = _body([(1, "Succeeded")], sink=sink, base="qwen")
    body["spec"]["models"][0] = VLLM_BASE
    fleet = _served(body)
    model = fleet.spec.model("qwen-math-v1")
    assert model.adapter is not None and model.adapter.uri == uri  # the Job's whole versioned directory
    assert (model.runtime, model.source.uri, model.gpus) == ("vllm", "hf://Qwen/Qwen2.5-1.5B-Instruct", 1)
    [deployment] = [
        c for c in desiring.desired_children(body)
        if c["kind"] == "Deployment" and c["metadata"]["name"] == "f-qwen-math-v1"
    ]  # fmt: skip
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # The router asks the version's Service for its served name: that name must be the LoRA module's, or vLLM
    # answers with the bare base (it matches served model names before LoRA modules).
    routed = next(m for m in render_router_config(fleet).to_wire()["models"] if m["name"] == "qwen-math-v1")
    module = args[args.index("--lora-modules") + 1]
    assert module.split("=", 1)[0] == routed["servedModelName"] == "qwen-instruct"
    assert args[args.index("--served-model-name") + 1] == "qwen-instruct-base"
    assert args[args.index("--max-lora-rank") + 1] == "16" and "--enable-lora" in args
    assert module.split("=", 1)[1].startswith("/adapters/")
