"""``flotilla pack-serve`` as a child process, and the whole process tree Ray starts under it.

Ray's gcs_server, raylet, agents and actor workers stay in the session the child was started in
(``start_new_session``) though the actors take process groups of their own, so the session id finds them
all: for their resident memory, and to make sure none outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from routerkit import PYTHON, Proc, free_port


def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """Summed RSS and PSS (shared pages divided among their sharers) of ``pids``, in KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in rollup:
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0])
            elif key == "Pss":
                pss += int(value.split()[0])
    return rss, pss


class PackServe:
    """A running ``flotilla pack-serve`` on a free loopback port."""

    def __init__(
        self, logs_dir: Path, config: dict[str, Any], name: str = "pack-serve", port: int | None = None
    ) -> None:
        self.port = port or free_port()  # a port of its own, or a stopped pack's (its pod coming back)
        self.url = f"http://127.0.0.1:{self.port}"
        path = logs_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, "host": "127.0.0.1", "port": self.port}))
        argv = [PYTHON, "-m", "flotilla.cli", "pack-serve", "--config", str(path)]
        self.proc = Proc(name, argv, logs_dir, {"RAY_USAGE_STATS_ENABLED": "0"})
        self.sid = self.proc.pid

    def wait_ready(self, timeout: float = 420) -> None:
        """Ray, Serve and the first models start in 40-60 s on a busy 2-core machine."""
        self.proc.wait_http(f"{self.url}/v1/models", timeout)

    def pids(self) -> list[int]:
        return session_pids(self.sid)

    def stop(self, grace: float = 60) -> list[int]:
        """SIGTERM (pack-serve shuts Serve and Ray down), then SIGKILL whatever of its session is left.
        Returns the PIDs still alive after the graceful part."""
        if self.proc.popen.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.popen.wait(10)
        deadline = time.monotonic() + 15
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers = self.pids()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        return leftovers
