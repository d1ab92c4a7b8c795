"""The shadow counters each router replica exports and the operator sums: the contract between the router's
mirroring (``flotilla.router.shadowing``) and the operator's promotion (``flotilla.promoting``).

Every counter is labelled ``task``, ``candidate`` and ``replica`` (pod name plus a per-process id, so a
restarted router is a new replica and nothing is counted twice: ``flotilla.promoting.tallies``).
"""

from __future__ import annotations

MIRRORED_METRIC = "flotilla_router_shadow_mirrored_total"
"""Requests mirrored to the candidate (after the client had its answer)."""
SCORED_METRIC = "flotilla_router_shadow_scored_total"
"""Mirrors scored: agreed, disagreed, or the candidate failed (an error counts as disagreement)."""
AGREED_METRIC = "flotilla_router_shadow_agreed_total"
"""Scored mirrors on which the candidate agreed with the served answer."""
ERRORS_METRIC = "flotilla_router_shadow_errors_total"
"""Scored mirrors the candidate failed to answer (connect error, 5xx, timeout, garbage)."""
COUNTED_METRICS = {SCORED_METRIC: "scored", AGREED_METRIC: "agreed", ERRORS_METRIC: "errors"}
"""The counters the operator reads, by the field of ``status.candidates[].counted`` they feed."""
