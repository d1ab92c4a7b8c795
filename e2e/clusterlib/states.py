"""The record of a running cluster (`cluster.json` in the state dir) and the lock around changing it.

`up` writes the record after each process it starts, so `down` can stop a half-started cluster even when
`up` itself was killed. Holding the lock makes concurrent `up`/`down` calls on one state dir take turns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterlib import processes, settings

STATE_FILE = "cluster.json"
# Everything `up` creates in the state dir. Only these are ever removed, so pointing FLOTILLA_CLUSTER_DIR at
# a folder holding other files cannot make `down` delete them.
OWNED = (
    STATE_FILE,
    STATE_FILE + ".tmp",
    "kubeconfig",
    "kubeconfig.tmp",
    "etcd",
    "pki",
    "logs",
    "node",
    "prometheus",
)


@dataclass
class State:
    """Everything `down`, `status` and `env` need to know about a started cluster."""

    server: str
    token: str
    ports: dict[str, int]
    procs: list[processes.Proc] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "token": self.token,
            "ports": self.ports,
            "procs": [p.to_json() for p in self.procs],
        }


def read(cfg: settings.Settings) -> State | None:
    """The recorded cluster, or None when there is none (or the record is unreadable)."""
    try:
        data = json.loads((cfg.state_dir / STATE_FILE).read_text())
        return State(
            server=str(data["server"]),
            token=str(data["token"]),
            ports={str(k): int(v) for k, v in data["ports"].items()},
            procs=[processes.Proc.from_json(p) for p in data["procs"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(cfg: settings.Settings, state: State) -> None:
    path = cfg.state_dir / STATE_FILE
    tmp = path.with_name(STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the admin token
    with os.fdopen(fd, "w") as handle:
        json.dump(state.to_json(), handle, indent=2)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(cfg: settings.Settings) -> Iterator[None]:
    """Exclusive lock on the state dir (a sibling lock file, so removing the dir keeps the lock valid)."""
    cfg.state_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = cfg.state_dir.with_name(cfg.state_dir.name + ".lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clear(state_dir: Path, keep_logs: bool) -> None:
    """Remove what `up` created in `state_dir` (all but the logs when `keep_logs`), then the dir if empty."""
    for name in OWNED:
        path = state_dir / name
        if keep_logs and name == "logs":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        state_dir.rmdir()  # only when empty
