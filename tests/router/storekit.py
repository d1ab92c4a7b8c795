"""A real S3-compatible store for the capture tests: SeaweedFS (`weed server -s3`, built from source by
`e2e/cluster build --only seaweedfs`), one process holding master, volume server, filer and S3 gateway, on
free loopback ports, with one identity (access key and secret) so requests are signed and checked."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from routerkit import Proc, free_port

from clusterlib import settings

ACCESS_KEY, SECRET_KEY = "flotilla-test", "flotilla-test-secret"
BUCKET = "traces"


def binary() -> Path:
    """The pinned SeaweedFS `weed`; a clear failure (not a skip) when not built yet."""
    return settings.load().built("weed", "seaweedfs")


class Store:
    """`start`/`stop`/`start` again keep the same ports and data directory (an outage, not a new store)."""

    def __init__(self, root: Path, logs: Path, host: str = "127.0.0.1") -> None:
        """``host``: the address it binds and is reached at (the real node's bridge address for pods)."""
        self.root = root
        self.host = host
        self.logs = logs
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: free_port() for name in self.ports}
        self.url = f"http://{host}:{self.ports['s3']}"
        self.proc: Proc | None = None
        self.starts = 0
        (root / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "flotilla",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (root / "s3.json").write_text(json.dumps(identities))

    def start(self, timeout: float = 60) -> None:
        argv = [str(binary()), "server", f"-dir={self.root / 'data'}"]
        argv += [f"-ip={self.host}", f"-ip.bind={self.host}"]
        for name in ("master", "volume", "filer", "s3"):
            argv += [f"-{name}.port={self.ports[name]}", f"-{name}.port.grpc={self.grpc[name]}"]
        argv += [
            "-filer",
            "-s3",
            f"-s3.config={self.root / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        # 64 MB volumes, grown 7 at a time for replication 000: room for two growths (sparse files)
        argv += ["-volume.max=16", "-master.volumeSizeLimitMB=64"]
        self.starts += 1
        self.proc = Proc(f"seaweedfs-{self.ports['s3']}-{self.starts}", argv, self.logs)
        deadline = time.monotonic() + timeout
        while True:  # ready once an authenticated request is served (the filer comes up after the gateway)
            try:
                client = self.client()
                if self.starts == 1:
                    client.create_bucket(Bucket=BUCKET)
                client.list_objects_v2(Bucket=BUCKET)
                return
            except Exception as exc:
                if self.proc.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"seaweedfs did not come up: {exc}\n{self.proc.log()[-3000:]}"
                    ) from exc
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def kill(self) -> None:
        """Stop it hard (SIGKILL by PID): an outage as the network or a crash would make it."""
        if self.proc is not None and self.proc.popen.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(10)
        self.stop()

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2)
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=config,
        )

    def lines(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every trace stored under ``prefix``."""
        client = self.client()
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", ()):
                body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                found += [json.loads(line) for line in body.splitlines() if line.strip()]
        return found

    def env(self) -> dict[str, str]:
        """What the router's pod gets from the sink's Secret."""
        return {"SINK_KEY": ACCESS_KEY, "SINK_SECRET": SECRET_KEY}

    def sink(self, prefix: str = "flotilla-traces/") -> dict[str, Any]:
        return {
            "endpoint": self.url,
            "bucket": BUCKET,
            "prefix": prefix,
            "accessKeyEnv": "SINK_KEY",
            "secretKeyEnv": "SINK_SECRET",
        }
