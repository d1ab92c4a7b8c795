"""Read the API keys a fleet's ``spec.access`` names from their Secrets and keep only their sha256.

The router config gets the hashes (``render.routing``), never a key. A key whose Secret or Secret key is
missing or empty is left out and reported (``AccessReady=False`` and a Warning Event, from ``statuses``):
its clients get 401, the rest of the fleet is served as usual. Secrets are read with ``get`` by name only
(the operator may neither list nor watch them), on every reconcile and on the access timer
(``controller.handlers.recheck_access``), so a rotated key reaches the routers within a timer period.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flotilla.reconcile import kube as kubeapi


@dataclasses.dataclass(frozen=True)
class Keys:
    """The fleet's usable keys (policy name → sha256 of the key) and why any were left out."""

    hashes: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()
    wanted: bool = False
    """The fleet has spec.access (so AccessReady is reported)."""

    @property
    def fingerprint(self) -> str:
        """Changes exactly when the hashes do (part of the rendering cache key)."""
        return hashlib.sha256(json.dumps(self.hashes, sort_keys=True).encode()).hexdigest()


def _key_bytes(secret: Mapping[str, Any], item: str) -> bytes | None:
    data = (secret.get("data") or {}).get(item)
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=True).strip()
    except (binascii.Error, ValueError):
        return None


async def resolve(kube: kubeapi.Kube, fleet: Mapping[str, Any]) -> Keys:
    """The hashes of the keys ``fleet`` names. Raises ``ApiError`` only when retrying may help."""
    access = (fleet.get("spec") or {}).get("access")
    if not isinstance(access, Mapping):
        return Keys()
    namespace = fleet["metadata"]["namespace"]
    secrets: dict[str, Mapping[str, Any] | str | None] = {}
    hashes: dict[str, str] = {}
    problems: list[str] = []
    owner: dict[str, str] = {}
    for key in access.get("keys") or []:
        name, ref = str(key.get("name")), key.get("secretRef") or {}
        secret_name, item = str(ref.get("name")), str(ref.get("key"))
        if secret_name not in secrets:
            try:
                secrets[secret_name] = await asyncio.to_thread(
                    kube.get, kubeapi.SECRET, namespace, secret_name
                )
            except kubeapi.ApiError as exc:
                if exc.retryable:
                    raise
                secrets[secret_name] = f"cannot be read ({exc.status} {exc.reason})"
        secret = secrets[secret_name]
        where = f"Secret {namespace}/{secret_name}"
        if isinstance(secret, str):
            problems.append(f"key {name}: {where} {secret}")
            continue
        if secret is None:
            problems.append(f"key {name}: {where} not found")
            continue
        value = _key_bytes(secret, item)
        if not value:
            problems.append(f"key {name}: {where} has no non-empty key {item!r}")
            continue
        digest = hashlib.sha256(value).hexdigest()
        if digest in owner:
            problems.append(f"key {name}: the same API key as key {owner[digest]} (left out)")
            continue
        owner[digest] = name
        hashes[name] = digest
    return Keys(hashes, tuple(problems), wanted=True)
