"""Render a whole fleet: every child object, pure and deterministic (same fleet -> same list, same order).

`render_fleet` is what the reconciler applies (it adds ownerReferences) and what `flotilla render` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla import errors
from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans
from flotilla.render import models, packs, rayservice, router
from flotilla.render.naming import (
    api_key_env,
    children_selector,
    model_deployment_name,
    model_hpa_name,
    model_pdb_name,
    model_selector,
    model_service_name,
    router_endpoint,
    router_name,
)
from flotilla.render.routing import render_router_config
from flotilla.render.settings import RenderSettings


def render_fleet(
    fleet: ModelFleet, settings: RenderSettings | None = None, key_hashes: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every child object of `fleet`: per model of its own (spec order) Deployment, Service, HPA?, PDB?;
    per planned pack pod (``flotilla.packing``) ConfigMap, Deployment, Service, PDB?; then the router's
    ServiceAccount, Role, RoleBinding, ConfigMap, Deployment, Service, PDB?. A packed model has no
    children of its own: its pack's pods serve it.

    ``key_hashes``: sha256 per access key name (read from the Secrets by the reconciler; see
    ``routing.render_router_config``). Raises InvalidSpecError when the fleet cannot be rendered (e.g. an
    inconsistent routing table).
    """
    settings = settings or RenderSettings()
    objects: list[dict[str, Any]] = []
    try:
        plan = plans.plan(fleet.spec)
        for model in fleet.spec.models:
            if plan.pod_of(model.name) is None:
                objects += models.render_model(fleet, model, settings)
        objects += packs.render_packs(fleet, plan, settings)
        objects += rayservice.render_rayservices(
            fleet, plan, image=settings.ray_image, pull_policy=settings.runtimes.image_pull_policy
        )
        objects += router.render_router(fleet, settings, key_hashes)
    except ValueError as exc:  # pydantic ValidationError of the RouterConfig is a ValueError
        raise errors.InvalidSpecError(f"cannot render fleet {fleet.namespace}/{fleet.name}: {exc}") from None
    return objects


__all__ = [
    "api_key_env",
    "children_selector",
    "model_deployment_name",
    "model_hpa_name",
    "model_pdb_name",
    "model_selector",
    "model_service_name",
    "render_fleet",
    "render_router_config",
    "router_endpoint",
    "router_name",
]
