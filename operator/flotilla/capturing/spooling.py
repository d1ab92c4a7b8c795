"""The router's local spool: append-only JSONL segments on disk, bounded in bytes.

Traces are appended to the open segment (``<id>.open``) in batches, each batch flushed and fsynced before
its traces count as captured. A segment is sealed (renamed ``<id>.jsonl``) when it reaches its size or age
limit, or on shutdown; sealed segments wait for the uploader, which deletes one only after the store
acknowledged it. A segment a previous process left open (killed) is sealed at start and uploaded like any
other; its last line may be cut, which readers skip. When the spool holds ``max_bytes``, the newest traces are
refused (the caller counts them as dropped): nothing blocks, and what is already spooled is kept.

Segment ids are ``<unix ns>-<random>``: sorted by creation, unique across replicas and restarts, so a
segment uploaded twice (an acknowledgement lost) overwrites its own object instead of duplicating traces.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path

OPEN, SEALED = ".open", ".jsonl"


class Spool:
    """Thread-safe: the writer appends from a worker thread while the uploader seals and removes."""

    def __init__(self, directory: Path, max_bytes: int, segment_max_bytes: int, segment_max_seconds: float):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_seconds = segment_max_seconds
        self._lock = threading.Lock()
        self._open: Path | None = None
        self._open_size = 0
        self._opened_at = 0.0
        self.used = 0
        """Bytes in the spool (open and sealed segments)."""

    def recover(self) -> int:
        """Create the directory, seal segments a previous process left open; return the segments waiting."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for path in self.directory.glob(f"*{OPEN}"):
                if path != self._open:
                    os.replace(path, path.with_suffix(SEALED))
            self.used = sum(p.stat().st_size for p in self.directory.glob(f"*{SEALED}"))
        return len(self.sealed())

    def append(self, lines: Sequence[bytes]) -> int:
        """Append ``lines`` (each ending in a newline) durably; return how many fit (the first ones)."""
        with self._lock:
            room = self.max_bytes - self.used
            taken: list[bytes] = []
            for line in lines:
                if len(line) > room:
                    break
                taken.append(line)
                room -= len(line)
            if not taken:
                return 0
            if self._open is None:
                self._open = self.directory / f"{time.time_ns():020d}-{secrets.token_hex(4)}{OPEN}"
                self._open_size = 0
                self._opened_at = time.monotonic()
            data = b"".join(taken)
            with self._open.open("ab") as segment:
                segment.write(data)
                segment.flush()
                os.fsync(segment.fileno())
            self._open_size += len(data)
            self.used += len(data)
            if self._open_size >= self.segment_max_bytes:
                self._seal_locked()
            return len(taken)

    def seal(self, only_if_due: bool = False) -> None:
        """Seal the open segment (when ``only_if_due``: only once it is old enough)."""
        with self._lock:
            if self._open is None:
                return
            if only_if_due and time.monotonic() - self._opened_at < self.segment_max_seconds:
                return
            self._seal_locked()

    def _seal_locked(self) -> None:
        assert self._open is not None
        os.replace(self._open, self._open.with_suffix(SEALED))
        self._open = None
        self._open_size = 0

    def sealed(self) -> list[Path]:
        """Sealed segments, oldest first."""
        return sorted(self.directory.glob(f"*{SEALED}"))

    def remove(self, path: Path) -> None:
        """Delete a segment the store has acknowledged."""
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self.used = max(0, self.used - size)

    def pending_bytes(self) -> int:
        with self._lock:
            return self.used
