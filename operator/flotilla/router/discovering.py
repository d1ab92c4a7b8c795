"""Find a model's pods from its Service's EndpointSlices, off the hot path.

One daemon thread per ``ServiceRef`` runs a Kubernetes watch (the official client is synchronous, so a
thread keeps it off the event loop) and hands each new set of ready pod URLs to the loop with
``call_soon_threadsafe``. Requests only ever read the pool's current list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flotilla.api.routerconfig import ServiceRef

log = logging.getLogger(__name__)

Publish = Callable[[list[str]], None]


def ready_urls(slices: Iterable[Mapping[str, Any]], port: int, path: str = "") -> list[str]:
    """Base URLs of ready endpoints across a Service's EndpointSlices, each followed by ``path`` (a
    packed model's ``/<model>`` on its pack's pods) (pure; unit-tested)."""
    urls: list[str] = []
    for item in slices:
        ports = {p.get("port") for p in item.get("ports") or [] if p.get("port")}
        use_port = port if not ports or port in ports else min(ports)
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"http://{host}:{use_port}{path}")
    return sorted(set(urls))


class SliceWatcher:
    """Watches one Service's EndpointSlices until ``stop``; restarts the watch after errors."""

    def __init__(self, service: ServiceRef, loop: asyncio.AbstractEventLoop, publish: Publish) -> None:
        self.service = service
        self._loop = loop
        self._publish = publish
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"slices-{service.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubernetes import client, config, watch  # imported here: only routers in a cluster need it

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        api = client.DiscoveryV1Api()
        selector = f"kubernetes.io/service-name={self.service.name}"
        slices: dict[str, dict[str, Any]] = {}
        while not self._stop.is_set():
            try:
                response = api.list_namespaced_endpoint_slice(
                    self.service.namespace, label_selector=selector, _preload_content=False
                )
                listed = json.loads(response.data)  # type: ignore[attr-defined]
                slices = {s["metadata"]["name"]: s for s in listed.get("items") or []}
                self._emit(slices)
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    api.list_namespaced_endpoint_slice,
                    self.service.namespace,
                    label_selector=selector,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = event["raw_object"]
                    name = obj["metadata"]["name"]
                    if event["type"] == "DELETED":
                        slices.pop(name, None)
                    else:
                        slices[name] = obj
                    self._emit(slices)
            except Exception as exc:  # any API error: log, back off, relist
                log.warning(
                    "EndpointSlice watch for %s/%s failed: %s", self.service.namespace, self.service.name, exc
                )
                self._stop.wait(2.0)

    def _emit(self, slices: Mapping[str, Mapping[str, Any]]) -> None:
        urls = ready_urls(slices.values(), self.service.port, self.service.path)
        self._loop.call_soon_threadsafe(self._publish, urls)
