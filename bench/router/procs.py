"""Processes the benchmark starts itself: launch pinned to CPUs, wait until ready, measure, stop by PID.

Everything here reads ``/proc`` directly (Linux only) so the harness needs no extra packages: resident memory
summed over a process tree, CPU time of a process tree, and per-core busy time.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class StartError(RuntimeError):
    """A process exited or never became ready; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` (the kernel keeps every thread and child on those cores)."""
    return ["taskset", "-c", cpus, *cmd] if cpus else list(cmd)


@dataclass
class Proc:
    """A started process group; ``stop()`` signals exactly that group (its PGID is the leader's PID)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(grace)


def prioritise(pid: int, nice: int) -> None:
    """Give ``pid``'s session its niceness also against other sessions.

    With ``kernel.sched_autogroup_enabled`` (on by default on many kernels, and on this machine) the CPU
    is first shared between sessions, and a process's own niceness only counts inside its session; a
    session's weight is set through ``/proc/PID/autogroup``.
    """
    if nice:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def start(
    name: str, cmd: Sequence[str], log_dir: Path, env: dict[str, str] | None = None, nice: int = 0
) -> Proc:
    """Start ``cmd`` in its own session (so its workers can be stopped together), output to a log file."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    prioritise(popen.pid, nice)
    return Proc(name, popen, log)


def wait_http(proc: Proc, url: str, timeout: float) -> None:
    """Poll ``url`` until it answers 2xx; raise ``StartError`` with the log tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise StartError(f"{proc.name} not ready at {url} after {timeout:.0f}s:\n{proc.log_tail()}")


def wait_line(proc: Proc, prefix: str, timeout: float) -> str:
    """Wait for a log line starting with ``prefix`` (e.g. ``READY <port>``) and return the rest of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        if not proc.alive():
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        time.sleep(0.05)
    raise StartError(f"{proc.name} printed no {prefix!r} after {timeout:.0f}s:\n{proc.log_tail()}")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; the name may contain spaces


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (LiteLLM's workers, taskset's exec'd child is ``pid`` itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of the process tree (``statm`` resident pages; shared pages count once per process)."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE_BYTES
    return total


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (pass ``tree(pid)`` for a whole server)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def settle(pids: Sequence[int], idle_share: float = 0.05, timeout: float = 15.0) -> None:
    """Wait until ``pids`` use under ``idle_share`` of a core: a proxy still draining requests queued by the
    last cell would otherwise steal the core from the next contender's measurement."""
    deadline = time.monotonic() + timeout
    previous = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = cpu_seconds(pids)
        if current - previous < idle_share * 0.2:
            return
        previous = current


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's waited-for children (every finished wrk run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from ``/proc/stat``."""
    result = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            result.append((sum(values) - idle, sum(values)))
    return result


def core_busy(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> list[float]:
    """Busy fraction of each core between two ``core_times()`` snapshots (all processes, not just ours)."""
    return [(b1 - b0) / max(t1 - t0, 1) for (b0, t0), (b1, t1) in zip(before, after, strict=True)]


@dataclass
class RssSampler:
    """Samples a process tree's RSS in a thread while load runs; ``peak`` is the highest sample."""

    pid: int
    interval: float = 0.25
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)
