"""Driving the built-in autoscaler on the local cluster from outside (tests/integration/autoscaler and
``bench/autoscaler.py --cluster``): a kwok GPU fleet, stand-in router pods published through the router
Service's EndpointSlices, and readers of the model Deployment's replicas and the fleet's scale Events.

A stand-in router pod is a real HTTP server exporting the router's real prometheus-client gauges
(:class:`metricservers.RouterMetricsServer`; kwok pods run no process). Each one gets its own EndpointSlice
because a slice has one port for all its endpoints and every stand-in listens on its own 127.0.0.1 port.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import operatorkit as ok

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "autoscaler"))  # shared test servers
from metricservers import RouterMetricsServer, broken_server

__all__ = ["RouterMetricsServer", "broken_server"]

FLEET = "elastic"
DEPLOYMENT = f"{FLEET}-coder"
STANDIN_HOST = "router.flotilla.test"
"""The stand-in routers' host name in their EndpointSlices; the operator connects to 127.0.0.1 for it."""
SCALE_REASONS = ("ScaleUp", "ScaleDown", "ColdStart", "BelowMin", "AboveMax")
"""Reasons of the Events the autoscaler posts when it changes replicas (never for a steady tick)."""


def autoscaler_env(interval: float = 0.5) -> dict[str, str]:
    """Operator environment: ticks every ``interval`` s, status at most every second, stand-ins reachable."""
    return {
        "FLOTILLA_AUTOSCALER_INTERVAL": f"{interval:g}",
        "FLOTILLA_AUTOSCALER_STATUS_PERIOD": "1",
        "FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": "1",  # the kwok router pods' addresses never answer
        "FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{STANDIN_HOST}=127.0.0.1",
    }


def fleet_doc(
    namespace: str, *, target: int = 4, window: float, down_delay: float, max_replicas: int = 3
) -> dict[str, Any]:
    """Fleet ``elastic``: one GPU model ``coder`` (kwok pods), builtin autoscaling, 0..``max_replicas``."""
    scaling = {
        "mode": "builtin",
        "targetInFlight": target,
        "window": f"{window:g}s",
        "scaleDownDelay": f"{down_delay:g}s",
    }
    return ok.gpu_fleet(namespace, FLEET, {"min": 0, "max": max_replicas}, scaling)


def _slice_name(pod: str) -> str:
    return f"{FLEET}-router-{pod}"


def publish_router(namespace: str, url: str, pod: str = "standin") -> None:
    """Make stand-in router pod ``pod`` (serving at ``url``) one of the ``<fleet>-router`` Service's
    endpoints, as the EndpointSlice controller does for a ready router pod. The apiserver refuses loopback
    IPs in EndpointSlices, so the slice names a host (addressType FQDN) that the operator maps to
    127.0.0.1 (FLOTILLA_AUTOSCALER_HOST_ALIASES); it finds the slice through the real API."""
    port = int(url.rsplit(":", 1)[1])
    ok.apply_doc({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": _slice_name(pod),
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": f"{FLEET}-router-admin",
                "endpointslice.kubernetes.io/managed-by": "flotilla-tests",
            },
        },
        "addressType": "FQDN",
        "ports": [{"name": "admin", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [STANDIN_HOST], "conditions": {"ready": True}}],
    })  # fmt: skip


def unpublish_router(namespace: str, pod: str) -> None:
    """Remove stand-in router pod ``pod`` from the Service's endpoints (the pod went away)."""
    ok.kubectl("delete", "endpointslice", _slice_name(pod), "-n", namespace)


def wait_deployment(namespace: str) -> None:
    def exists() -> bool:
        return ok.kubectl_try("get", "deployment", DEPLOYMENT, "-n", namespace).returncode == 0

    ok.wait_until(exists, 90, "the operator to create the model Deployment")


def replicas(namespace: str) -> tuple[int, int]:
    """(spec.replicas, status.readyReplicas) of the model's Deployment."""
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace)
    return int(body["spec"].get("replicas", 0)), int(body.get("status", {}).get("readyReplicas") or 0)


def scale_events(namespace: str) -> list[str]:
    """Reasons of the autoscaler's replica-changing Events on the fleet (in no particular order)."""
    events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
    return [e["reason"] for e in events["items"] if e["reason"] in SCALE_REASONS]


def autoscaling_status(namespace: str, model: str = "coder") -> dict[str, Any]:
    """The model's ``status.autoscaling`` entry of the fleet (empty before the autoscaler wrote one)."""
    fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
    entries = (fleet.get("status") or {}).get("autoscaling") or []
    return next((dict(e) for e in entries if e.get("name") == model), {})
