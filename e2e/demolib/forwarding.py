"""`kubectl port-forward` as a context manager: how a person outside the cluster reaches a Service."""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
from collections.abc import Iterator

from clusterlib import settings
from demolib.tools import DemoError, Tools

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextlib.contextmanager
def port_forward(tools: Tools, namespace: str, target: str, port: int, timeout: float = 30) -> Iterator[int]:
    """Forward a free local port on 127.0.0.1 to `target` (e.g. `svc/assistants-router`) port `port`;
    yields the local port. A thread drains kubectl's output (it prints a line per connection, and a full
    pipe would stall the forward); the process is stopped by its PID on exit."""
    command = [str(settings.load().binary("kubectl")), f"--kubeconfig={tools.kubeconfig}", "-n", namespace]
    command += ["port-forward", "--address", "127.0.0.1", target, f":{port}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True, name=f"port-forward {target}").start()
    try:
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise DemoError(f"kubectl port-forward {target} said nothing in {timeout:.0f} s") from None
            if line is None:
                raise DemoError(f"kubectl port-forward {target} exited: {''.join(seen).strip()}")
            seen.append(line)
            if match := _FORWARDING.search(line):
                break
        yield int(match.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
