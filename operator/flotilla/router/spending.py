"""Each key's cloud spend this month: this replica's own, plus what the operator aggregated from the rest.

The router adds the dollars of every cloud-served answer to the key's counter (exported on the admin
``/metrics`` as ``flotilla_router_key_cloud_spend_usd_total{key, month, replica}``) and to this ledger. The
operator reads every replica's counter and writes the sums into the spend file (``flotilla.api.spend``),
which this module polls. See ``docs/router.md`` ("Budgets") for the arithmetic and its overshoot bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flotilla.api.spend import SpendFile, month_of

log = logging.getLogger(__name__)


def replica_id() -> str:
    """``<pod name>-<random>``: the pod name from the downward API (``POD_NAME``; the host name outside a
    cluster), plus an id per process, so a restarted container starts a new counter the operator can tell
    from the old one."""
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{pod}-{secrets.token_hex(4)}"


class Ledger:
    """Cloud dollars per (key, month): this process's own, and the operator's last aggregate."""

    def __init__(self, replica: str, counter: Any = None) -> None:
        self.replica = replica
        self._counter = counter  # prometheus Counter labelled key, month, replica (None in unit tests)
        self.own: dict[tuple[str, str], float] = {}
        self.shared: SpendFile | None = None

    def add(self, key: str, dollars: float, month: str | None = None) -> None:
        """Count ``dollars`` of cloud spend for ``key``."""
        if dollars <= 0:
            return
        month = month or month_of()
        self.own[(key, month)] = self.own.get((key, month), 0.0) + dollars
        if self._counter is not None:
            self._counter.labels(key, month, self.replica).inc(dollars)

    def spent(self, key: str, month: str | None = None) -> float:
        """The fleet's spend of ``key`` this month as far as this replica knows."""
        month = month or month_of()
        own = self.own.get((key, month), 0.0)
        shared = self.shared
        if shared is None or shared.month != month:
            return own
        counted = shared.counted.get(self.replica, {}).get(key, 0.0)
        return shared.totals.get(key, 0.0) + max(0.0, own - counted)


def read(path: Path) -> SpendFile | None:
    """The spend file, or None when it is absent or unreadable (logged)."""
    try:
        return SpendFile.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:
        log.warning("spend file %s ignored: %s", path, exc)
        return None


async def watch(path: Path, ledger: Ledger, interval: float) -> None:
    """Load the spend file into ``ledger`` now and whenever it changes (stat polling, as for the config:
    a ConfigMap volume swaps a ``..data`` symlink)."""
    seen: tuple[int, int, int] | None = None
    while True:
        try:
            st = os.stat(path)
            current: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            current = None
        if current != seen:
            seen = current
            ledger.shared = await asyncio.to_thread(read, path) if current is not None else None
        await asyncio.sleep(interval)
