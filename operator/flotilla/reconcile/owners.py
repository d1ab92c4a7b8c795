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
