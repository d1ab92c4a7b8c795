"""The pinned kubectl and helm, run against one kubeconfig; failures become DemoError with their output."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterlib import settings


class DemoError(Exception):
    """A step failed in a way a person can act on; the CLI prints it as one message and exits 1."""


@dataclass(frozen=True)
class Tools:
    """kubectl and helm of the pinned versions, pointed at `kubeconfig`."""

    kubeconfig: Path

    @classmethod
    def for_cluster(cls, state_dir: Path | None = None) -> Tools:
        cfg = settings.load()
        return cls(kubeconfig=(state_dir or cfg.state_dir) / "kubeconfig")

    def _run(
        self, binary: str, args: tuple[str, ...], stdin: str | None, timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        path = settings.load().binary(binary)
        if not path.exists():
            raise DemoError(f"{path} is missing: run `e2e/cluster build --real-node` first")
        done = subprocess.run(
            [str(path), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise DemoError(f"{binary} {' '.join(args)} failed ({done.returncode}): {output}")
        return done

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
        return self._run("kubectl", args, stdin, timeout, check).stdout

    def helm(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return self._run("helm", args, None, timeout, check).stdout

    def get_json(self, *args: str) -> Any:
        """`kubectl get ... -o json`, decoded."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, namespace: str, document: dict[str, Any] | str) -> None:
        """`kubectl apply` of one object (a dict) or a file path (a str)."""
        if isinstance(document, str):
            self.kubectl("apply", "-n", namespace, "-f", document)
        else:
            self.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))
