"""Flotilla's exception tree, mapped at the edges (kopf handlers, HTTP responses, CLI exit codes).

FlotillaError
├── UsageError            bad input from a person: a file, a flag (CLI exit code 2)
├── InvalidSpecError      a ModelFleet the apiserver accepted but Flotilla cannot render (permanent)
│   └── PolicyError       ... or may not: an image or provider host outside the operator's allow-lists
├── NameConflictError     a child's name is taken by an object the fleet does not control (retried)
├── ConfigError           a router config that does not load (the router keeps the previous one)
└── UpstreamError         a model server or provider failed; carries the fallback reason
"""

from __future__ import annotations


class FlotillaError(Exception):
    """Base of every error Flotilla raises on purpose."""


class UsageError(FlotillaError):
    """A person's input is wrong; the message says what and how to fix it."""


class InvalidSpecError(FlotillaError):
    """The fleet spec cannot be rendered; retrying will not help until the spec changes."""


class PolicyError(InvalidSpecError):
    """The fleet names an image or provider host the deployment does not allow (docs/security.md)."""


class NameConflictError(FlotillaError):
    """Objects the fleet does not control already have names of its children: nothing was written.

    Not permanent: the other object may go (its fleet deleted, a leftover garbage-collected), so the
    reconcile is retried.
    """

    def __init__(self, conflicts: list[str]) -> None:
        super().__init__("; ".join(conflicts))
        self.conflicts = conflicts


class ConfigError(FlotillaError):
    """The router configuration is invalid."""


class UpstreamError(FlotillaError):
    """A model server or provider failed before the first byte reached the client."""

    def __init__(self, reason: str, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
