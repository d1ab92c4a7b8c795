"""Returning freed heap pages: on glibc the call exists and gives memory back after large frees."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from flotilla.router import heap


def _anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_go_back_to_the_kernel() -> None:
    """Many mid-sized blocks (below the mmap threshold, so on the heap) freed with one survivor on top:
    glibc keeps the pages until trimmed."""
    blocks = [bytearray(64 * 1024) for _ in range(800)]  # ~50 MB of heap, touched
    survivor = bytearray(64 * 1024)
    del blocks
    before = _anon_kib()
    assert heap.release_freed() is True
    assert before - _anon_kib() > 20 * 1024  # more than 20 MiB given back
    assert survivor  # still alive
