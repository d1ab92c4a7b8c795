"""The spool on a real directory: bounded (newest refused), sealed by size and on demand, recovered after a
crash, and its byte count follows removals."""

from __future__ import annotations

from pathlib import Path

from flotilla.capturing.spooling import Spool


def test_bound_seal_recover_remove(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=120, segment_max_bytes=40, segment_max_seconds=60)
    spool.recover()
    line = b"x" * 19 + b"\n"  # 20 bytes
    assert spool.append([line, line]) == 2  # 40 bytes: sealed by size
    assert len(spool.sealed()) == 1
    assert spool.append([line]) == 1  # open, not due yet
    spool.seal(only_if_due=True)
    assert len(spool.sealed()) == 1
    assert spool.append([line, line, line, line]) == 3  # 120-byte bound: the newest is refused
    assert spool.used == 120 and len(spool.sealed()) == 2
    assert spool.append([line]) == 0
    # a crash with a segment open: a new process seals it and counts everything
    assert spool.append([]) == 0
    spool.segment_max_bytes = 10**6
    for segment in spool.sealed()[:1]:
        spool.remove(segment)
    assert spool.append([line]) == 1 and len(spool.sealed()) == 1  # this one stays open
    again = Spool(tmp_path, max_bytes=120, segment_max_bytes=40, segment_max_seconds=60)
    assert again.recover() == 2 and again.used == 100
    for segment in again.sealed():
        again.remove(segment)
    assert again.used == 0 and not list(tmp_path.iterdir())
