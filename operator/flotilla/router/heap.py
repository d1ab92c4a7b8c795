"""Settle the router's memory after it built a config: freeze what it keeps, return what it freed.

**Freeze.** A router holds a large, long-lived object graph (its modules, the config, the classifier's
tables of rules and presets: ~70,000 tracked objects) and makes many short-lived ones per request. The
cyclic collector's full collections walk all of it, about twice a second under load (27 ms each, ~5% of the
router's CPU, measured with ``gc.callbacks`` at c=64). ``gc.freeze`` moves the graph built so far to the
permanent generation, which collections skip (a full collection then takes ~2 ms). It is undone and redone
on each reload, so the cycles of a replaced snapshot are still collected (one reload later at the latest).

**Trim.** Loading a classifier reads ~30 MB of arrays through temporaries (the head file, dtype copies).
glibc raises its mmap threshold after the first large free, so later temporaries come from the heap, and
freeing them leaves the pages with the process: 13 MB of resident memory that nothing uses
(bench/classify_latency.py). ``malloc_trim`` gives them back. No library wraps it; it is one ctypes
lookup, and skipped where the C library has none (musl, macOS).
"""

from __future__ import annotations

import ctypes
import functools
import gc
from typing import Any


@functools.cache
def _trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed() -> bool:
    """Return free heap memory to the kernel; False where the C library cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True


def settle() -> None:
    """After a config is built and swapped in: collect what the previous one left (its cycles included),
    freeze the rest, and return the freed heap. One pause of a few tens of ms per reload."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    release_freed()
