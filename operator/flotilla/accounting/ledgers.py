"""The operator's ledger of one fleet's cloud spend per API key: pure arithmetic, no I/O.

Every router replica exports a monotonic counter per (key, month) labelled with its replica id (pod name
plus a per-process id: ``flotilla.router.spending.replica_id``). The ledger remembers, per replica and key,
the counter value it already added (``counted``), and adds only the increase. So:

- a replica read twice adds nothing the second time; a replica that missed a read adds its whole increase
  on the next one;
- a restarted router process is a new replica (its counter starts at 0 under a new id): nothing is lost
  and nothing counted twice;
- an operator restart resumes from ``status.access`` (totals and counted), so it neither loses nor repeats
  spend;
- a new month (UTC) starts from zero;
- a replica not seen for ``forget_after`` seconds is dropped from ``counted`` (its spend stays in
  ``totals``). The price: a replica that was unreadable that long and then answers is counted again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from flotilla.api.spend import SPEND_METRIC, SpendFile
from flotilla.counters import increase

FORGET_AFTER = 3600.0
"""Seconds after which a replica no longer read is dropped from ``counted``."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One replica's counter for one key and month."""

    replica: str
    key: str
    month: str
    usd: float


def parse(text: str) -> list[Sample]:
    """The spend samples in one router's Prometheus text (ValueError when it is not Prometheus text)."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != SPEND_METRIC:
                continue
            labels = sample.labels
            if {"replica", "key", "month"} <= labels.keys():
                found.append(Sample(labels["replica"], labels["key"], labels["month"], float(sample.value)))
    return found


@dataclasses.dataclass
class FleetLedger:
    """One fleet's totals for ``month`` and what each replica's counters contributed to them."""

    month: str
    totals: dict[str, float] = dataclasses.field(default_factory=dict)
    counted: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    seen: dict[str, float] = dataclasses.field(default_factory=dict)
    """Replica → when it was last read (monotonic seconds; in memory only)."""

    @classmethod
    def from_status(cls, stored: Mapping[str, Any] | None, month: str, now: float) -> FleetLedger:
        """Resume from a fleet's ``status.access`` (a fresh ledger for another month or none)."""
        if not stored or stored.get("month") != month:
            return cls(month)
        totals = {str(k["name"]): float(k.get("spentUSD", 0.0)) for k in stored.get("keys") or []}
        counted: dict[str, dict[str, float]] = {}
        for entry in stored.get("counted") or []:
            counted.setdefault(str(entry["replica"]), {})[str(entry["key"])] = float(entry.get("usd", 0.0))
        return cls(month, totals, counted, dict.fromkeys(counted, now))

    def observe(self, samples: Iterable[Sample], month: str, now: float) -> bool:
        """Add the increase of every sample of ``month``; True when totals or counted changed."""
        changed = False
        if month != self.month:
            self.month, self.totals, self.counted, self.seen = month, {}, {}, {}
            changed = True
        for sample in samples:
            if sample.month != month:
                continue
            self.seen[sample.replica] = now
            mine = self.counted.setdefault(sample.replica, {})
            before = mine.get(sample.key, 0.0)
            delta = increase(sample.usd, before)
            if delta > 0:
                self.totals[sample.key] = self.totals.get(sample.key, 0.0) + delta
            if sample.usd != before:  # also a reset to zero: what it counts from next time
                mine[sample.key] = sample.usd
                changed = True
        for replica in [r for r in self.counted if now - self.seen.get(r, now) > FORGET_AFTER]:
            del self.counted[replica]
            del self.seen[replica]
            changed = True
        return changed

    def spend_file(self) -> SpendFile:
        """What the routers read (``flotilla.api.spend``)."""
        return SpendFile(month=self.month, totals=dict(self.totals), counted=dict(self.counted))

    def to_status(self, budgets: Mapping[str, float | None]) -> dict[str, Any]:
        """``status.access``: spend per key of the spec (in spec order), a summary, and what is counted."""
        keys = []
        for name, budget in budgets.items():
            entry: dict[str, Any] = {"name": name, "spentUSD": round(self.totals.get(name, 0.0), 9)}
            if budget is not None:
                entry["budgetUSD"] = budget
            keys.append(entry)
        summary = ",".join(f"{k['name']}=${k['spentUSD']:.2f}" for k in keys)
        counted = [
            {"replica": replica, "key": key, "usd": usd}
            for replica, values in sorted(self.counted.items())
            for key, usd in sorted(values.items())
        ]
        return {"month": self.month, "keys": keys, "summary": summary, "counted": counted}
