"""The scenarios' S3-compatible store: SeaweedFS (tests/router/storekit.py) on the real node's bridge
address, which pods reach (the node is this machine), and its keys as a Secret."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clusterlib import nodeconfig
from demolib.tools import Tools

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "router"))  # the SeaweedFS process
from storekit import ACCESS_KEY, BUCKET, SECRET_KEY, Store

__all__ = ["BUCKET", "Store", "fleet_with_keys", "on_node", "secret", "source_keys"]


def on_node(root: Path) -> Store:
    """A store (not started) keeping its data under ``root``, bound to the bridge address."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    return Store(root, root / "logs", host=nodeconfig.NODE_IP)


def secret(name: str) -> dict[str, Any]:
    """The store's keys as a Secret, under names of the fleet's choosing (`id`, `secret`)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"id": ACCESS_KEY, "secret": SECRET_KEY}}  # fmt: skip


def source_keys(name: str) -> dict[str, Any]:
    """`accessKeyID` and `secretAccessKey` selectors of the Secret ``secret(name)``."""
    return {"accessKeyID": {"name": name, "key": "id"}, "secretAccessKey": {"name": name, "key": "secret"}}


@contextlib.contextmanager
def fleet_with_keys(tools: Tools, namespace: str, fleet: dict[str, Any], secret_name: str) -> Iterator[None]:
    """The Secret ``secret(secret_name)`` and ``fleet`` applied; both deleted afterwards (the fleet with its
    children first)."""
    tools.apply(namespace, secret(secret_name))
    tools.apply(namespace, fleet)
    try:
        yield
    finally:
        name = fleet["metadata"]["name"]
        tools.kubectl("delete", "modelfleet", name, "-n", namespace, "--ignore-not-found", "--wait=true",
                      timeout=180)  # fmt: skip
        tools.kubectl("delete", "secret", secret_name, "-n", namespace, "--ignore-not-found")
