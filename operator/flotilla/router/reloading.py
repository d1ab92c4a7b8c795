"""Watch the config file and swap in a new snapshot when it changes, keeping the old one if it is invalid.

Kubernetes updates a mounted ConfigMap by swapping the ``..data`` symlink, so the watcher polls ``os.stat``
of the path (which follows symlinks) and compares inode, size and mtime: cheap, and it sees both in-place
edits and symlink swaps. Polling (default 1 s) rather than inotify, because inotify on the symlinked file
misses the swap.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from flotilla.api.routerconfig import RouterConfig
from flotilla.errors import ConfigError
from flotilla.router import snapshots

log = logging.getLogger(__name__)

Apply = Callable[[RouterConfig], Awaitable[None]]


def fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


async def watch(path: Path, apply: Apply, on_result: Callable[[str], None], interval: float = 1.0) -> None:
    """Run until cancelled: on every change load the file and ``apply`` it; log (never raise) failures."""
    seen = fingerprint(path)
    while True:
        await asyncio.sleep(interval)
        current = fingerprint(path)
        if current == seen or current is None:
            continue
        seen = current
        try:
            config = await asyncio.to_thread(snapshots.load_config, path)
            await apply(config)
        except ConfigError as exc:
            log.error("config change ignored, keeping the previous config: %s", exc)
            on_result("invalid")
        except Exception:
            log.exception("config change could not be applied, keeping the previous config")
            on_result("invalid")
        else:
            log.info("config reloaded from %s", path)
            on_result("ok")
