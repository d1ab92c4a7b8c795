"""Status of scheduling and packing: why pods are not placed, status.packs and the Packed condition."""

from __future__ import annotations

from typing import Any

from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans
from flotilla.reconcile import statuses
from flotilla.reconcile.statuses import DeploymentView, PodTrouble

NOW = "2026-12-07T01:00:00Z"
INSUFFICIENT = "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match selector."


def view(model: str | None, replicas: int = 1, ready: int = 0) -> DeploymentView:
    component = "router" if model is None else "model"
    return DeploymentView(f"f-{model or 'router'}", component, model, replicas, ready, replicas, 1, 1)


def observed(**kw: Any) -> statuses.Observed:
    fields: dict[str, Any] = {
        "generation": 1,
        "applied_generation": 1,
        "endpoint": None,
        "models": ("coder", "pocket"),
        "deployments": (view("coder"), view("pocket", ready=1), view(None, ready=1)),
    }
    return statuses.Observed(**{**fields, **kw})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_scheduling_failure_reads_pod_scheduled_unschedulable_only() -> None:
    unschedulable = {
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": INSUFFICIENT}
        ]
    }
    gated = {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
    placed = {"conditions": [{"type": "PodScheduled", "status": "True"}]}  # fmt: skip
    assert statuses.scheduling_failure(unschedulable) == INSUFFICIENT
    assert statuses.scheduling_failure(gated) is None
    assert statuses.scheduling_failure(placed) is None
    assert statuses.scheduling_failure({}) is None


def test_an_unschedulable_model_says_why_in_its_status_and_the_fleet_conditions() -> None:
    status = statuses.compute(
        observed(pod_troubles=[PodTrouble("model", "coder", statuses.UNSCHEDULABLE + INSUFFICIENT)]),
        None,
        NOW,
    )
    coder = next(m for m in status["models"] if m["name"] == "coder")
    assert coder["phase"] == "Progressing"
    assert coder["message"] == f"0/1 replicas ready; pods unschedulable: {INSUFFICIENT}"
    models_ready = condition(status, "ModelsReady")
    assert (models_ready["status"], models_ready["reason"]) == ("False", "ModelsUnschedulable")
    assert "Insufficient nvidia.com/gpu" in models_ready["message"]
    ready = condition(status, "Ready")
    assert ready["reason"] == "ModelsUnschedulable" and "Insufficient nvidia.com/gpu" in ready["message"]


def test_a_ready_model_ignores_a_stale_unschedulable_surge_pod() -> None:
    status = statuses.compute(
        observed(pod_troubles=[PodTrouble("model", "pocket", statuses.UNSCHEDULABLE + INSUFFICIENT)]),
        None,
        NOW,
    )
    pocket = next(m for m in status["models"] if m["name"] == "pocket")
    assert pocket["phase"] == "Ready" and "unschedulable" not in pocket["message"]
    assert condition(status, "ModelsReady")["reason"] == "ModelsNotReady"  # coder is not ready, but placed


def _plan(pocket_memory: str) -> plans.Plan:
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "f"},
        "spec": {
            "placement": {"pack": "auto"},
            "models": [
                {"name": name, "source": {"uri": "pvc://gguf/gemma.gguf"}, "runtime": "llamacpp",
                 "quantization": "Q4_K_M", "placement": {"memory": memory}}
                for name, memory in (("coder", "300Mi"), ("pocket", pocket_memory))
            ],
        },
    }  # fmt: skip
    return plans.plan(ModelFleet.from_body(body).spec)


def test_the_plan_is_in_status_with_budgets_and_says_what_serves_it() -> None:
    status = statuses.compute(observed(packing=_plan("250Mi")), None, NOW)
    [pack] = status["packs"]
    assert pack["name"] == "auto-1" and pack["accelerator"] == "cpu"
    assert pack["models"] == ["coder", "pocket"]
    assert (pack["memoryBudget"], pack["memoryCapacity"]) == ("14.4Gi", "16Gi")
    assert {m["name"]: m.get("pack") for m in status["models"]} == {"coder": "auto-1", "pocket": "auto-1"}
    packed = condition(status, "Packed")
    assert (packed["status"], packed["reason"]) == ("True", "AllModelsPacked")
    assert plans.SERVED in packed["message"]


def test_a_model_that_fits_no_pod_gets_a_false_packed_condition_and_the_stored_plan_survives_a_restart() -> (
    None
):
    status = statuses.compute(observed(packing=_plan("20Gi")), None, NOW)
    packed = condition(status, "Packed")
    assert (packed["status"], packed["reason"]) == ("False", "ModelsDoNotFit")
    assert "pocket: TooLarge: needs" in packed["message"] and "a cpu pod has 16Gi" in packed["message"]
    assert [p["models"] for p in status["packs"]] == [["coder"]]
    restarted = statuses.compute(observed(packing=None), status, NOW)  # not planned by this process yet
    assert restarted["packs"] == status["packs"] and condition(restarted, "Packed") == packed
    unpacked = statuses.compute(observed(packing=plans.Plan()), status, NOW)  # packing turned off
    assert "packs" not in unpacked and not any(c["type"] == "Packed" for c in unpacked["conditions"])


def test_an_unschedulable_router_says_why_in_router_ready() -> None:
    deployments = (view("coder", ready=1), view("pocket", ready=1), view(None, ready=0))
    status = statuses.compute(
        observed(
            deployments=deployments,
            pod_troubles=[PodTrouble("router", None, statuses.UNSCHEDULABLE + INSUFFICIENT)],
        ),
        None,
        NOW,
    )
    router = condition(status, "RouterReady")
    assert router["status"] == "False" and router["message"].endswith(f"pods unschedulable: {INSUFFICIENT}")


def test_a_model_that_stops_fitting_posts_one_warning() -> None:
    fits = statuses.compute(observed(packing=_plan("250Mi")), None, NOW)
    too_large = statuses.compute(observed(packing=_plan("20Gi")), fits, NOW)
    [notice] = [n for n in statuses.transitions(fits, too_large) if n.reason == "ModelsDoNotFit"]
    assert notice.type == "Warning" and "pocket: TooLarge" in notice.message
    again = statuses.compute(observed(packing=_plan("20Gi")), too_large, NOW)
    assert not [n for n in statuses.transitions(too_large, again) if n.reason == "ModelsDoNotFit"]


def test_reports_pod_trouble_tells_whether_a_pod_event_may_clear_something() -> None:
    stuck = statuses.compute(
        observed(pod_troubles=[PodTrouble("model", "coder", statuses.UNSCHEDULABLE + INSUFFICIENT)]),
        None,
        NOW,
    )
    placed = statuses.compute(observed(), None, NOW)
    assert statuses.reports_pod_trouble(stuck) and not statuses.reports_pod_trouble(placed)
    assert not statuses.reports_pod_trouble(None)


NOT_FOUND = "flotilla objects: s3://b/models/m.gguf -> /models/m.gguf at http://store:8333: 404: Not Found"


def test_start_failure_names_the_failed_init_container_and_its_last_log_line() -> None:
    retrying = {
        "initContainerStatuses": [
            {"name": "download", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
             "lastState": {"terminated": {"exitCode": 1, "message": f"some progress\n{NOT_FOUND}\n"}}},
        ]
    }  # fmt: skip
    assert statuses.start_failure(retrying) == f"download exited 1: {NOT_FOUND}"
    failed_once = {"initContainerStatuses": [{"name": "download", "state": {"terminated": {"exitCode": 2}}}]}
    assert statuses.start_failure(failed_once) == "download exited 2"
    image = {
        "containerStatuses": [
            {
                "name": "server",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}},
            }
        ]
    }
    assert statuses.start_failure(image) == "server ImagePullBackOff: no such image"
    assert statuses.pod_trouble(image) == statuses.FAILING + "server ImagePullBackOff: no such image"


def test_start_failure_is_none_while_starting_or_serving() -> None:
    done = {"name": "download", "state": {"terminated": {"exitCode": 0}}}
    starting = {
        "initContainerStatuses": [done],
        "containerStatuses": [{"name": "server", "state": {"waiting": {"reason": "PodInitializing"}}}],
    }
    restarted_then_serving = {
        "initContainerStatuses": [done],
        "containerStatuses": [
            {"name": "server", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137}}}
        ],
    }
    for status in (starting, restarted_then_serving, {}, None):
        assert statuses.start_failure(status) is None  # type: ignore[arg-type]


def test_a_model_whose_download_fails_says_so_without_calling_itself_unschedulable() -> None:
    failing = PodTrouble("model", "coder", statuses.FAILING + f"download exited 1: {NOT_FOUND}")
    status = statuses.compute(observed(pod_troubles=[failing]), None, NOW)
    coder = next(m for m in status["models"] if m["name"] == "coder")
    assert coder["message"] == f"0/1 replicas ready; pods failing: download exited 1: {NOT_FOUND}"
    models_ready = condition(status, "ModelsReady")
    assert models_ready["reason"] == "ModelsNotReady" and "404: Not Found" in models_ready["message"]
    assert statuses.reports_pod_trouble(status)
