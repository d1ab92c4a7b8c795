"""Give the heap pages that building a classifier freed back to the kernel (glibc's ``malloc_trim``).

Loading a classifier reads ~30 MB of arrays through temporaries (the head file, dtype copies). glibc raises
its mmap threshold after the first large free, so later temporaries come from the heap, and freeing them
leaves the pages with the process: 13 MB of a router's resident memory that nothing uses
(bench/classify_latency.py). No library wraps the call; it is one ctypes lookup, and a no-op where the C
library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import functools
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
