"""Owner references: how every child points at its fleet, so deleting the fleet garbage-collects it all.

Pure functions on dicts. The fleet is the *controller* owner of each child (``controller: true``), which
also lets the child watchers find the fleet from a child without a lookup table.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Manifest = dict[str, Any]


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The ownerReference naming ``owner`` (a fleet body) as controller of a child.

    ``blockOwnerDeletion`` makes foreground deletion of the fleet wait for its children.
    """
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(manifest: Mapping[str, Any], owner: Mapping[str, Any]) -> Manifest:
    """A copy of ``manifest`` whose only ownerReference is ``owner``; the input is left untouched."""
    child = copy.deepcopy(dict(manifest))
    child.setdefault("metadata", {})["ownerReferences"] = [owner_reference(owner)]
    return child


def controller_uid(child: Mapping[str, Any]) -> str | None:
    """The uid of the child's controller owner, if any."""
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def controller_of(child: Mapping[str, Any]) -> str:
    """Who controls ``child``, for a person: ``is controlled by ModelFleet a-b (uid …)``, or that nothing
    does."""
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"is controlled by {ref.get('kind')} {ref.get('name')} (uid {ref.get('uid')})"
    return "has no controller"


def conflict(manifest: Mapping[str, Any], existing: Mapping[str, Any] | None, owner_uid: str) -> str | None:
    """Why ``manifest`` must not be applied over ``existing`` (None: nothing there, or the owner's own).

    Server-side apply with ``force`` would take any object of that name: another fleet's child whose name
    renders the same (fleet ``a`` with model ``b-router`` and fleet ``a-b`` both render ``a-b-router``), a
    leftover of an earlier fleet with the same name not yet garbage-collected, or an object nobody made
    for Flotilla. Only objects whose controller is the owner itself are the owner's to change.
    """
    if existing is None or controller_uid(existing) == owner_uid:
        return None
    meta = manifest["metadata"]
    return f"{manifest.get('kind')} {meta['name']} exists and {controller_of(existing)}"
