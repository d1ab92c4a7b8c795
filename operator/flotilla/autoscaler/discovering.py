"""Finding the router pods to read: the ready endpoints of the fleet router admin Service's EndpointSlices.

The admin Service (``<fleet>-router-admin``, port ``admin``: /metrics and /upstreams) is rendered by
``flotilla.render.router``; its EndpointSlices list exactly the router pods that pass readiness, which are
the ones holding requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PORT_NAME = "admin"


def endpoints_from_slices(slices: Iterable[Mapping[str, Any]], port_name: str = PORT_NAME) -> list[str]:
    """``http://ADDRESS:PORT`` of every ready endpoint in EndpointSlices (as camelCase dicts), sorted,
    without duplicates (an address can appear in two slices while they are being rebalanced)."""
    urls: set[str] = set()
    for slice_ in slices:
        ports = [p for p in slice_.get("ports") or [] if p.get("name") == port_name and p.get("port")]
        if not ports:
            continue
        port = ports[0]["port"]
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue  # ready unset means unknown: treat as ready, as kube-proxy does
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.add(f"http://{host}:{port}")
    return sorted(urls)


def slice_selector(router_service: str) -> str:
    """Label selector for a Service's EndpointSlices."""
    return f"{SERVICE_NAME_LABEL}={router_service}"


def aliased(urls: Iterable[str], aliases: Mapping[str, str]) -> list[str]:
    """Endpoint URLs with each aliased host replaced by its address (``FLOTILLA_AUTOSCALER_HOST_ALIASES``)."""
    out = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        out.append(url.replace(host, aliases[host], 1) if host in aliases else url)
    return out
