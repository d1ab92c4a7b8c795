"""Serving runtimes: one module per engine, registered in `RUNTIMES` (name -> `Runtime`).

Adding one (e.g. ray-serve): write `runtimes/rayserve.py` with a `RUNTIME` object, add it here and add its
capabilities to `flotilla.api.capabilities.CAPABILITIES`. Rendering looks runtimes up only through this table.
"""

from __future__ import annotations

from flotilla import errors
from flotilla.runtimes import llamacpp, vllm
from flotilla.runtimes.base import PodParts, Runtime, RuntimeSettings

RUNTIMES: dict[str, Runtime] = {vllm.NAME: vllm.RUNTIME, llamacpp.NAME: llamacpp.RUNTIME}


def get(name: str) -> Runtime:
    """The runtime called `name`; InvalidSpecError if there is none (the API rejects unknown names first)."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise errors.InvalidSpecError(
            f"unknown runtime {name!r}: supported runtimes are {', '.join(RUNTIMES)}"
        ) from None


__all__ = ["RUNTIMES", "PodParts", "Runtime", "RuntimeSettings", "get"]
