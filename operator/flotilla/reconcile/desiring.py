"""Desired state: a fleet body → the child manifests it should have (parse + render, no I/O).

The one place the reconciler turns the API engineer's models and renderer into plain dicts; any reason the
spec cannot be rendered becomes :class:`flotilla.errors.InvalidSpecError` with a message for a person.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pydantic

from flotilla import errors
from flotilla.api import fleet as fleet_api
from flotilla.render import fleet as fleet_render
from flotilla.render import settings as render_settings

Manifest = dict[str, Any]


@functools.cache
def settings() -> render_settings.RenderSettings:
    """The operator's FLOTILLA_* rendering settings (images, llama.cpp flavor), read once from env."""
    return render_settings.load()


def desired_children(body: Mapping[str, Any]) -> list[Manifest]:
    """Every child manifest of the fleet (without owner references; the applier adds them)."""
    try:
        fleet = fleet_api.ModelFleet.from_body(dict(body))
        return list(fleet_render.render_fleet(fleet, settings()))
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
