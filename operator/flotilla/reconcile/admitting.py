"""What a ModelFleet author may point the operator at: the deployment's allow-lists of images and provider
hosts, checked before anything is rendered (pure: a parsed fleet and the settings in, problems out).

The same rules run at admission in the chart's ValidatingAdmissionPolicy
(``charts/flotilla/templates/admissionpolicy.yaml``), so a bad fleet is usually refused by the apiserver;
this check is the second line, for clusters without the policy (or fleets stored before it). A fleet that
breaks them gets Ready=False (reason ``NotAllowed``), a Warning Event and no children at all: an image could
run with the namespace's Secrets in its environment, and a provider host receives the fallback's API key.

The rules (docs/security.md):

- ``spec.models[].image`` and ``spec.router.image`` must start with an allowed prefix;
- an ``openai-compatible`` fallback's ``baseURL`` must be https to an allowed host, or plain http to a host
  named for http (in-cluster Services); ``openai`` and ``anthropic`` use their official endpoints (the CRD
  refuses any other ``baseURL``);
- ``spec.access.jwt.jwksURL`` may be any https host, plain http only to a host named for http;
- link-local and cloud metadata addresses are never allowed, whatever the lists say.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from flotilla import errors
from flotilla.api import fleet as fleet_api

DEFAULT_IMAGE_PREFIXES = (
    "flotilla:", "flotilla-llamacpp:", "flotilla-gemma3-270m:", "flotilla-ray:", "flotilla-ray-vllm:",
    "flotilla-finetune:", "flotilla-finetune-gpu:",
)  # fmt: skip
"""The project's own images (``scripts/build-images``; the vLLM pack image's Dockerfile): what a fleet may
name without further settings, and every image the operator renders by default but vLLM's own."""

BLOCKED_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com",
    "instance-data", "instance-data.ec2.internal",
})  # fmt: skip
"""Cloud metadata services by name: they hand out the node's credentials."""

BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8")
)
"""Link-local (every cloud's metadata address 169.254.169.254 among them), AWS's IPv6 metadata address,
Alibaba's metadata address, and "this network"."""

ENV = {
    "FLOTILLA_ALLOWED_IMAGE_PREFIXES": "image_prefixes",
    "FLOTILLA_ALLOWED_PROVIDER_HOSTS": "provider_hosts",
    "FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "http_provider_hosts",
}


@dataclass(frozen=True)
class Policy:
    """The deployment's allow-lists (chart values ``policy.*``), comma-separated in the environment."""

    image_prefixes: tuple[str, ...] = DEFAULT_IMAGE_PREFIXES
    """Prefixes a fleet's model and router images must start with, e.g. `registry.example/llm/`. Images the
    operator's own settings pick are not checked: whoever sets those is trusted."""
    provider_hosts: tuple[str, ...] = ()
    """Hosts an openai-compatible fallback may use over https: exact names, `*.example.com` for its
    subdomains, or `*` for any host (then a fleet author can send a referenced key anywhere). Empty: none."""
    http_provider_hosts: tuple[str, ...] = ()
    """Hosts an openai-compatible fallback may use over plain http (exact names, meant for in-cluster
    Services such as `standin` or `vllm.shared.svc`). Empty: none."""


def load(environ: Mapping[str, str] | None = None) -> Policy:
    """The policy from FLOTILLA_ALLOWED_* (an unset variable keeps its default; a set, empty one: none)."""
    env = os.environ if environ is None else environ
    values = {
        attr: tuple(item.strip() for item in env[var].split(",") if item.strip())
        for var, attr in ENV.items()
        if var in env
    }
    policy = dataclasses.replace(Policy(), **values)
    for host in policy.http_provider_hosts:
        if "*" in host:
            raise errors.UsageError(
                f"FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS takes exact host names, not {host!r}"
            )
    return policy


def violations(fleet: fleet_api.ModelFleet, policy: Policy) -> list[str]:
    """Every way ``fleet`` breaks ``policy``, one sentence each (empty: allowed)."""
    problems = []
    images = [(f"spec.models[{i}].image", m.image) for i, m in enumerate(fleet.spec.models)]
    images.append(("spec.router.image", fleet.spec.router.image))
    for i, task in enumerate(fleet.spec.routing.tasks):  # a training Job runs the fleet's own image too
        train = task.distillation.train if task.distillation else None
        if train is not None:
            images.append((f"spec.routing.tasks[{i}].distillation.train.image", train.image))
    for path, image in images:
        if image is not None and not image.startswith(policy.image_prefixes):
            allowed = ", ".join(policy.image_prefixes) or "none"
            problems.append(
                f"{path} {image!r} is not allowed: images must start with one of the operator's allowed "
                f"prefixes ({allowed})"
            )
    for i, fallback in enumerate(fleet.spec.fallbacks):
        if fallback.provider == "openai-compatible" and fallback.base_url is not None:
            problem = provider_url_problem(fallback.base_url, policy)
            if problem:
                problems.append(
                    f"spec.fallbacks[{i}].baseURL {fallback.base_url!r} is not allowed: {problem}"
                )
    jwt = fleet.spec.access.jwt if fleet.spec.access else None
    if jwt is not None:
        problem = url_problem(jwt.jwks_url, policy)
        if problem:
            problems.append(f"spec.access.jwt.jwksURL {jwt.jwks_url!r} is not allowed: {problem}")
    return problems


def check(fleet: fleet_api.ModelFleet, policy: Policy) -> None:
    """Raise ``PolicyError`` listing every violation of ``policy``."""
    problems = violations(fleet, policy)
    if problems:
        raise errors.PolicyError("; ".join(problems))


def provider_url_problem(url: str, policy: Policy) -> str | None:
    """Why a provider may not be reached at ``url`` (None: it may)."""
    problem = url_problem(url, policy)
    if problem:
        return problem
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host not in policy.http_provider_hosts and not host_allowed(host, policy.provider_hosts):
        allowed = ", ".join(policy.provider_hosts) or "none"
        return f"host {host} is not among the operator's allowed provider hosts ({allowed})"
    return None


def url_problem(url: str, policy: Policy) -> str | None:
    """Why the router may not reach ``url`` at all (None: it may, as far as scheme and address go): no
    http(s) or host, a metadata address, or plain http to a host not named for it. Enough for the JWKS
    (``spec.access.jwt.jwksURL``): the router sends it nothing, but whoever can change the keys in transit
    can mint tokens."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or parts.scheme not in ("http", "https"):
        return "it needs an http(s) scheme and a host"
    if blocked(host):
        return f"{host} is a link-local or cloud metadata address"
    if parts.scheme == "http" and host not in policy.http_provider_hosts:
        allowed = ", ".join(policy.http_provider_hosts) or "none"
        return f"plain http is only allowed to the hosts the operator names for it ({allowed}); use https"
    return None


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """``host`` matches an exact name, a ``*.suffix`` (subdomains only) or ``*``."""
    return any(
        p == "*" or p.lower() == host or (p.startswith("*.") and host.endswith(p[1:].lower()))
        for p in patterns
    )


def blocked(host: str) -> bool:
    """A metadata host name, or an address in a link-local or metadata network (IPv4-mapped included)."""
    if host in BLOCKED_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in BLOCKED_NETWORKS)


def settings_reference() -> str:
    """Markdown section of docs/reference/settings.md for the allow-lists."""
    defaults = Policy()
    lines = [
        "",
        "## Admission allow-lists",
        "",
        "What a ModelFleet may name (comma-separated; see [docs/security.md](../security.md)). The chart "
        "sets them from `policy.*` and enforces the same lists at admission with a "
        "ValidatingAdmissionPolicy.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    for var, attr in ENV.items():
        default = ",".join(getattr(defaults, attr)) or "(none)"
        doc = " ".join((_DOCS[attr]).split())
        lines.append(f"| `{var}` | `{default}` | {doc} |")
    return "\n".join(lines) + "\n"


_DOCS = {
    "image_prefixes": "Prefixes a fleet's `spec.models[].image`, `spec.router.image` and "
    "`spec.routing.tasks[].distillation.train.image` must start with.",
    "provider_hosts": "Hosts an `openai-compatible` fallback may use over https: exact names, "
    "`*.example.com` (subdomains), or `*` (any host: lets a fleet author send a referenced key anywhere).",
    "http_provider_hosts": "Hosts an `openai-compatible` fallback may use over plain http: exact names of "
    "in-cluster Services. Link-local and metadata addresses are refused whatever the lists say.",
}
