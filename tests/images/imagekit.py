"""A private containerd for the image tests, and containers run in it with `ctr` (no Kubernetes, no mocks).

The daemon gets its own root, state and socket under a temporary folder (CRI plugin off), so it never
touches a containerd the real node may run; it is stopped by its PID at the end.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

NAMESPACE = "k8s.io"  # where the kubelet's CRI looks; scripts/build-images --load imports there


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Containerd:
    """containerd with everything under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.address = str(directory / "containerd.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        d = self.directory
        config = d / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{d}/root"\nstate = "{d}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{d}/opt"\n'
        )
        with (d / "containerd.log").open("wb") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited: {(d / 'containerd.log').read_text()[-2000:]}")
            if self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"containerd did not answer on {self.address} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ctr", "--address", self.address, "-n", NAMESPACE, *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def run(self, image: str, name: str, *command: str, options: Iterable[str] = ()) -> str:
        """Run a container to completion on the host network; its stdout."""
        return self.ctr("run", "--rm", "--net-host", *options, image, name, *command).stdout

    def start_container(
        self,
        image: str,
        name: str,
        command: Iterable[str],
        env: Mapping[str, str],
        mounts: Iterable[str] = (),
    ) -> None:
        """Start a detached container as the image's user, read-only root, tmpfs at /tmp and /cache: the
        way the operator's pod spec runs it (readOnlyRootFilesystem, emptyDirs). Its output goes to
        `log(name)` (a detached task with no reader would block once the pipe is full)."""
        options = ["--detach", "--net-host", "--read-only", "--log-uri", f"file://{self.log_path(name)}"]
        for target in ("/tmp", "/cache"):
            options += ["--mount", f"type=tmpfs,src=tmpfs,dst={target},options=rw:nosuid:nodev:mode=1777"]
        for mount in mounts:
            options += ["--mount", mount]
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        self.ctr("run", *options, image, name, *command)

    def log_path(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def log(self, name: str) -> str:
        """The last lines a started container wrote."""
        path = self.log_path(name)
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def remove(self, name: str) -> None:
        """SIGKILL the task, then delete task and container (the task needs a moment to be reaped)."""
        self.ctr("task", "kill", "--signal", "SIGKILL", name, check=False)
        deadline = time.monotonic() + 20
        while self.ctr("task", "delete", name, check=False).returncode != 0 and time.monotonic() < deadline:
            if name not in self.ctr("task", "ls", "-q", check=False).stdout.split():
                break
            time.sleep(0.5)
        self.ctr("container", "delete", name, check=False)


def http_json(
    url: str, body: Mapping[str, Any] | None = None, timeout: float = 120
) -> tuple[int, Any, dict[str, str]]:
    """GET (or POST `body` as JSON); status, decoded JSON body and headers (lower-case names)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, json.loads(response.read() or b"null"), headers


def http_lines(url: str, body: Mapping[str, Any], timeout: float = 120) -> list[str]:
    """POST `body` as JSON and read the (streamed) response to its end, as lines."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return [line.decode().rstrip("\r\n") for line in response]


def wait_http(url: str, timeout: float, what: str, log: Callable[[], str] = str) -> None:
    """Poll until `url` answers 200; on timeout fail with the last error and `log()` (the server's log)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, _, _ = http_json(url, timeout=5)
            if status == 200:
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what} at {url} (last: {last})\n{log()}"
    )
