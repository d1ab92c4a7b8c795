"""Start and stop the cluster's processes by recorded PID, and read their logs and memory.

A PID alone can be reused by the kernel after a process dies, so each record also keeps the process start
time from /proc/<pid>/stat; a process is "ours" only when both match. Linux only (like the cluster).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Proc:
    """One started component: its name, PID, kernel start time (clock ticks since boot) and log file."""

    name: str
    pid: int
    start: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proc:
        return cls(
            name=str(data["name"]), pid=int(data["pid"]), start=int(data["start"]), log=str(data["log"])
        )


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a PID, or None when no such process exists."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after its closing paren are fixed.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def alive(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[1] == proc.start and stat[0] not in ("Z", "X")


def spawn(
    name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[Proc, subprocess.Popen[bytes]]:
    """Start `cmd` in its own session (it outlives `up`) with stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    stat = _stat(popen.pid)
    start = stat[1] if stat else 0
    return Proc(name=name, pid=popen.pid, start=start, log=str(log)), popen


def stop(procs: list[Proc], grace: float = 10.0) -> list[str]:
    """Stop processes one at a time, last started first: SIGTERM, then SIGKILL after `grace` seconds.

    One at a time because the apiserver shuts down cleanly (in about a second) only while etcd still
    answers, and clients of the apiserver likewise. Returns the names of processes that needed SIGKILL.
    """
    killed = []
    for proc in reversed(procs):
        if not alive(proc):
            continue
        _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(proc) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.02)
        if alive(proc):
            killed.append(proc.name)
            _signal(proc, signal.SIGKILL)
            while alive(proc):
                _reap()
                time.sleep(0.02)
    return killed


def _signal(proc: Proc, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def _reap() -> None:
    """Collect exited children of this process (when `up` stops what it just started) so none stay zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def tail(log: str | Path, lines: int = 15) -> str:
    """The last lines of a log file, indented for an error message."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return "    (no log written)"
    last = text.rstrip("\n").splitlines()[-lines:] or ["(log is empty)"]
    return "\n".join("    " + line[:400] for line in last)


def rss_bytes(proc: Proc) -> int:
    """Resident memory of a live process (VmRSS), 0 when it is gone."""
    if not alive(proc):
        return 0
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0
