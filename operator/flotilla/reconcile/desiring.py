"""Desired state: a fleet body → the child manifests it should have (parse + render, no I/O).

The one place the reconciler turns the API engineer's models and renderer into plain dicts; any reason the
spec cannot be rendered becomes :class:`flotilla.errors.InvalidSpecError` with a message for a person.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pydantic

from flotilla import errors
from flotilla.api import fleet as fleet_api
from flotilla.api import routerconfig
from flotilla.packing import plans
from flotilla.reconcile import admitting, planning
from flotilla.render import fleet as fleet_render
from flotilla.render import settings as render_settings
from flotilla.render import trained

Manifest = dict[str, Any]
T = TypeVar("T")


@functools.cache
def settings() -> render_settings.RenderSettings:
    """The operator's FLOTILLA_* rendering settings (images, llama.cpp flavor), read once from env."""
    return render_settings.load()


@functools.cache
def policy() -> admitting.Policy:
    """The operator's FLOTILLA_ALLOWED_* allow-lists, read once from env."""
    return admitting.load()


def admit(body: Mapping[str, Any]) -> None:
    """Raise ``PolicyError`` when the fleet names an image or provider host the deployment does not allow
    (``InvalidSpecError`` when it cannot be parsed)."""
    _rendered(body, lambda fleet: admitting.check(fleet, policy()))


def desired_children(body: Mapping[str, Any], key_hashes: Mapping[str, str] | None = None) -> list[Manifest]:
    """Every child manifest of the fleet (without owner references; the applier adds them); ``key_hashes``
    are the access keys' sha256 by name (``reconcile.keying``). A fleet outside the allow-lists has none:
    ``PolicyError``, so not even a restored child carries a refused image."""
    return _rendered(body, lambda fleet: _children(fleet, key_hashes))


def _children(fleet: fleet_api.ModelFleet, key_hashes: Mapping[str, str] | None) -> list[Manifest]:
    """The fleet's children once it passes the allow-lists; two with one kind and name are a ValueError
    (an InvalidSpecError above)."""
    admitting.check(fleet, policy())
    children = list(fleet_render.render_fleet(fleet, settings(), key_hashes))
    clashes = planning.duplicates(children)
    if clashes:
        raise ValueError(f"two children of the fleet would have the same name: {', '.join(clashes)}")
    return children


def decisions(body: Mapping[str, Any]) -> str:
    """The status a rendering depends on (``render.trained``): ``task/model=State`` of every candidate in
    ``status.candidates`` that is no longer Shadowing and ``task/vN=Succeeded`` of every trained version
    ("" when none), so a decision or a new adapter invalidates the cache."""
    status = body.get("status") or {}
    candidates = [
        f"{c.get('task')}/{c.get('model')}={c.get('state')}"
        for c in status.get("candidates") or []
        if isinstance(c, Mapping) and c.get("state") not in (None, "Shadowing")
    ]
    versions = [
        f"{t.get('task')}/v{t.get('version')}=Succeeded"
        for t in status.get("training") or []
        if isinstance(t, Mapping) and t.get("phase") == "Succeeded"
    ]
    return ",".join(sorted(candidates + versions))


def router_config(body: Mapping[str, Any]) -> routerconfig.RouterConfig:
    """The fleet's routing table as its spec says (tasks, default task, classifier)."""
    return _rendered(body, fleet_render.render_router_config)


def packing_plan(body: Mapping[str, Any]) -> plans.Plan:
    """Which opted-in models would share which pod (``flotilla.packing``); planned, not rendered yet."""
    return _rendered(body, lambda fleet: plans.plan(fleet.spec))


def with_classifier(body: Mapping[str, Any], model: Mapping[str, str] | None) -> Mapping[str, Any]:
    """The fleet with ``spec.routing.classifier.model`` replaced by ``model`` ({url, sha256}: the last one
    the operator accepted; None: no custom classifier) when its spec names one; as it is otherwise.

    So a rejected classifier never reaches the router config: its routers keep the one they have.
    """
    spec = body.get("spec") or {}
    routing = spec.get("routing") or {}
    classifier = routing.get("classifier") or {}
    if not classifier.get("model"):
        return body
    replaced = {k: v for k, v in classifier.items() if k != "model"}
    if model is not None:
        replaced["model"] = dict(model)
    return {**body, "spec": {**spec, "routing": {**routing, "classifier": replaced}}}


def _rendered(body: Mapping[str, Any], render: Callable[[fleet_api.ModelFleet], T]) -> T:
    """``render`` applied to the parsed fleet; any reason it cannot be becomes ``InvalidSpecError``."""
    try:
        fleet = trained.served(fleet_api.ModelFleet.from_body(dict(body)))
        return render(fleet)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise errors.InvalidSpecError(problems) from None
    except ValueError as exc:  # renderer/runtimes refusing a combination they cannot serve
        raise errors.InvalidSpecError(str(exc)) from None


def model_names(body: Mapping[str, Any]) -> list[str]:
    """Model names in spec order, read without validation so a broken spec still gets a status."""
    models = (body.get("spec") or {}).get("models") or []
    return [str(m.get("name")) for m in models if isinstance(m, Mapping) and m.get("name")]
