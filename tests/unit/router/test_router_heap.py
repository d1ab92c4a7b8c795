"""Settling the router's memory: freed heap pages go back to the kernel (glibc), and what a config built
is frozen out of the collector's way while the garbage of the previous one is still collected."""

from __future__ import annotations

import gc
import platform
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.router import heap


def _anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process as it was


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


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_settle_freezes_what_lives_and_still_collects_a_replaced_config(unfrozen: None) -> None:
    old = _Node()
    heap.settle()  # the first config: `old` is frozen with the rest
    assert gc.get_freeze_count() > 0
    gone = weakref.ref(old)
    del old  # replaced by a reload: cyclic garbage in the permanent generation
    gc.collect()
    assert gone() is not None  # frozen objects are not collected ...
    heap.settle()  # ... until the next settle unfreezes, collects and freezes again
    assert gone() is None
    assert gc.get_freeze_count() > 0
