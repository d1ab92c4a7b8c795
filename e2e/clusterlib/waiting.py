"""`wait_until`: poll a condition with a deadline; for tests on the cluster (stdlib only, so reusable).

Tests across the repo import it as `from clusterlib.waiting import wait_until` (the root conftest.py puts
e2e/ on sys.path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """The condition did not hold in time; an AssertionError so pytest reports it as a test failure."""


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy and return that; raise Timeout naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)
