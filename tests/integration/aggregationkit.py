"""Registering a metrics apiserver that runs as a process (KEDA's, prometheus-adapter) with the local
cluster's aggregation layer, so the real kube-controller-manager's HPA controller can read it.

The kube-apiserver (`--enable-aggregator-routing`, set by e2e/cluster) proxies the API group to the
endpoints of a selector-less Service in the test's namespace, which hold this machine's non-loopback IP
(the aggregator refuses loopback endpoints). Test-only: the cluster has no front-proxy CA, so the
aggregator's requests reach the adapter as `system:anonymous`: the adapter lets discovery (/apis/*)
through, and a Role in the test's namespace lets anonymous read the group's metrics there (the adapter
asks the apiserver, as in a real install, but for the wrong user). The APIService skips TLS verification
of the adapter's self-signed serving certificate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import operatorkit as ok

ALWAYS_ALLOW = "--authorization-always-allow-paths=/apis,/apis/*,/openapi/*,/healthz,/readyz,/livez"
"""The adapters' flag letting the (anonymous) aggregator through for discovery and health."""


def self_signed(directory: Path) -> Path:
    """ca.crt, tls.crt and tls.key (one self-signed P-256 certificate for localhost) in `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise AssertionError("`openssl` is not on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copyfile(directory / "tls.crt", directory / "ca.crt")
    return directory


def host_ip() -> str:
    """This machine's first global IPv4 address: the apiserver's aggregator refuses loopback endpoints."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    addresses = [listed[i + 1].split("/")[0] for i, word in enumerate(listed[:-1]) if word == "inet"]
    if not addresses:
        raise AssertionError("no global IPv4 address: a metrics apiserver behind the aggregator needs one")
    return addresses[0]


def api_service_name(group: str, version: str = "v1beta1") -> str:
    return f"{version}.{group}"


def register_docs(service: str, namespace: str, ip: str, port: int, group: str) -> list[dict[str, Any]]:
    """The Service, its EndpointSlice and Endpoints (`ip`), the anonymous Role and the v1beta1 APIService
    of `group` (e.g. external.metrics.k8s.io)."""
    meta = {"name": service, "namespace": namespace}
    tcp = {"name": "https", "port": port, "protocol": "TCP"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"ports": [{**tcp, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{service}-host", "namespace": namespace,
                      "labels": {"kubernetes.io/service-name": service,
                                 "endpointslice.kubernetes.io/managed-by": "flotilla-tests"}},
         "addressType": "IPv4", "ports": [tcp],
         "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
         "subsets": [{"addresses": [{"ip": ip}], "ports": [tcp]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [group], "resources": ["*"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": service},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": api_service_name(group)},
         "spec": {"service": {"name": service, "namespace": namespace, "port": port},
                  "group": group, "version": "v1beta1",
                  "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]  # fmt: skip


def register(docs: list[dict[str, Any]], timeout: float = 120) -> str:
    """Apply `docs` (from register_docs) and wait until the APIService is Available; its name. On failure
    the APIService is deleted again (it is cluster-wide: a stale one would break the next run)."""
    (api,) = [d["metadata"]["name"] for d in docs if d["kind"] == "APIService"]
    if ok.kubectl_try("get", "apiservice", api).returncode == 0:
        raise AssertionError(
            f"{api} is already registered on this cluster (another run's, or a real adapter)"
        )

    def available() -> bool | None:
        found = ok.get_json("apiservice", api)
        conditions = {c["type"]: c["status"] for c in found.get("status", {}).get("conditions", [])}
        return conditions.get("Available") == "True" or None

    why = "(a cluster started before e2e/cluster set --enable-aggregator-routing needs a restart)"
    try:
        for doc in docs:
            ok.apply_doc(doc)
        ok.wait_until(available, timeout, f"the APIService {api} up {why}", interval=1)
    except BaseException:
        unregister(api)
        raise
    return api


def unregister(api: str) -> None:
    """Delete the APIService (cluster-scoped; the rest goes with the test's namespace)."""
    ok.kubectl("delete", "apiservice", api, "--timeout=60s", check=False)
