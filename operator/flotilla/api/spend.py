"""The fleet-wide cloud spend per API key: the file the operator writes and every router replica reads.

Each router replica counts the cloud dollars its keys spent this month in a counter it exports on its admin
``/metrics`` (``flotilla_router_key_cloud_spend_usd_total{key, month, replica}``; ``replica`` is the pod name
plus a per-process id, so a restarted process is a new replica). The operator reads every replica, adds
each one's increase since it last counted it into ``totals`` and records the value it counted in
``counted``. A replica then knows the fleet's spend of a key as ``totals[key] + own - counted[me][key]``:
what the others spent up to the operator's last read, plus all it spent itself.
"""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field

SPEND_KEY = "spend.json"
"""The ConfigMap key (and file name in the router pod) holding a ``SpendFile``."""
SPEND_METRIC = "flotilla_router_key_cloud_spend_usd_total"
"""The per-replica counter the operator reads (a Prometheus counter; the family name without _total)."""


def month_of(moment: datetime.datetime | None = None) -> str:
    """The budget month of ``moment`` (now when None), ``YYYY-MM`` in UTC."""
    return (moment or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m")


def seconds_to_next_month(moment: datetime.datetime | None = None) -> float:
    """Seconds until the next budget month begins (UTC), for ``Retry-After``."""
    now = moment or datetime.datetime.now(datetime.UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    return (following - now).total_seconds()


class SpendFile(BaseModel):
    """The fleet-wide spend of one month as last aggregated by the operator."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$")
    totals: dict[str, float] = Field(default_factory=dict)
    """Key name → USD spent on cloud fallbacks this month by every replica, up to the last read."""
    counted: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Replica → key name → the value of its counter already included in ``totals``."""
