"""The capture counter each router replica exports and the operator sums into ``status.traces``: the contract
between the router's capture pipeline (``flotilla.capturing.pipeline``) and the operator
(``flotilla.promoting.counting``).

Labelled ``task`` and ``replica`` (pod name plus a per-process id, like the shadow counters of
``flotilla.api.candidates``), so a restarted router is a new replica and nothing is counted twice.
"""

from __future__ import annotations

CAPTURED_METRIC = "flotilla_router_traces_captured_total"
"""Traces of a task written durably to the replica's local spool (they reach the sink from there)."""
