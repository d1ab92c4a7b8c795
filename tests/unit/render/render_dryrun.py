"""kubectl for the render tests that ask a real kube-apiserver (server-side dry runs): one copy of the
call and of the namespace they run in, which warns on pods breaking the `restricted` Pod Security
Standard."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flotilla.render import documents


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


@contextmanager
def restricted_namespace(prefix: str) -> Iterator[str]:
    """A new namespace labelled to warn on `restricted` Pod Security violations, deleted (not waited
    for) afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    assert kubectl("create", "namespace", name).returncode == 0
    assert kubectl("label", "namespace", name, "pod-security.kubernetes.io/warn=restricted").returncode == 0
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def dry_run(
    namespace: str, objects: list[dict[str, Any]], server_side: bool = False
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --dry-run=server --validate=strict` of `objects` (strict: a misspelt field fails)."""
    mode = ["--server-side"] if server_side else []
    return kubectl(
        "apply", *mode, "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        stdin=documents.dump_all(objects),
    )  # fmt: skip
