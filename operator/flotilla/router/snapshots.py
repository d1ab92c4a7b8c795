"""One loaded config, resolved for the hot path: targets, task chains, classifier, the /v1/models body.

A ``Snapshot`` is immutable; ``reloading`` builds a new one and swaps it in. A request keeps the snapshot
it started with, so a reload never changes a request half-way.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flotilla.api.routerconfig import ModelUpstream, Price, ProviderUpstream, RouterConfig, TaskRoute
from flotilla.errors import ConfigError
from flotilla.router import classifying
from flotilla.router.forwarding import Target
from flotilla.router.upstreams import Upstreams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    config: RouterConfig
    classifier: classifying.Classifier
    targets: dict[str, Target]
    chains: dict[str, tuple[str, ...]]
    """task → upstream names in order (models, then fallbacks)."""
    model_task: dict[str, str]
    """fleet model or provider → the task it is reached through when asked for by name."""
    counterfactual: dict[str, Price | None]
    """task → price of its first cloud fallback (for the "saved" metric)."""
    fallback_on: frozenset[str]
    models_body: bytes
    cloud: dict[str, bool]
    """upstream name → whether it is a cloud fallback (what an API key's policy restricts)."""
    midstream: dict[str, int]
    """task → how many times one stream may switch upstream mid-way (0: mid-stream failover off)."""
    policies: dict[str, TaskRoute] = field(default_factory=dict)
    """task → its route, only for tasks with escalation or test-time compute (the rest skip a lookup)."""


def load_config(path: Path) -> RouterConfig:
    """Read and validate a config file (YAML or JSON); ``ConfigError`` says what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (a RouterConfig)")
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path} is not a valid router config: {problems}") from None


def read_key(provider: ProviderUpstream) -> str | None:
    """The provider's API key from its env var or Secret file; None when neither is configured or set."""
    if provider.api_key_env:
        value = os.environ.get(provider.api_key_env)
        if value:
            return value.strip()
    if provider.api_key_file:
        try:
            return Path(provider.api_key_file).read_text().strip() or None
        except OSError:
            return None
    return None


def _model_target(model: ModelUpstream, upstreams: Upstreams, config: RouterConfig) -> Target:
    pool = upstreams.pool(model.name, config.circuit_breaker)
    if model.service is None:
        pool.set_endpoints(model.endpoints)
    return Target(
        name=model.name,
        pool=pool,
        protocol="openai",
        upstream_model=model.served_model_name,
        price=model.price,
        first_byte_timeout=model.first_byte_timeout_seconds,
        total_timeout=model.timeout_seconds,
        max_in_flight=model.max_in_flight,
        scale_from_zero=model.scale_from_zero,
        is_cloud=False,
        multiple_choices=model.multiple_choices,
        continues=True,
    )


def _provider_target(provider: ProviderUpstream, upstreams: Upstreams, config: RouterConfig) -> Target:
    pool = upstreams.pool(provider.name, config.circuit_breaker)
    pool.set_endpoints([provider.base_url])
    key = read_key(provider)
    if key is None and (provider.api_key_env or provider.api_key_file):
        log.warning(
            "no API key found for provider %s (env %s, file %s)",
            provider.name,
            provider.api_key_env,
            provider.api_key_file,
        )
    return Target(
        name=provider.name,
        pool=pool,
        protocol="anthropic" if provider.provider == "anthropic" else "openai",
        upstream_model=provider.model,
        price=provider.price,
        first_byte_timeout=provider.timeout_seconds,
        total_timeout=provider.timeout_seconds,
        max_in_flight=None,
        scale_from_zero=False,
        is_cloud=True,
        api_key=key,
        relays_errors=provider.provider != "openai-compatible",
        continues=provider.provider != "openai",
        base_path="",
    )


def build(config: RouterConfig, upstreams: Upstreams, classifier: classifying.Classifier) -> Snapshot:
    """Resolve ``config`` against the long-lived pools (updating their static endpoints); on the event loop.

    The classifier is built beforehand (``classifying.build_classifier``, possibly in a thread: it may load
    an embedding model), so nothing here can fail after pools were touched.
    """
    started = time.perf_counter()
    targets = {m.name: _model_target(m, upstreams, config) for m in config.models}
    targets.update({p.name: _provider_target(p, upstreams, config) for p in config.fallbacks})
    upstreams.retain(targets)
    chains = {t.name: tuple(dict.fromkeys([*t.models, *t.fallbacks])) for t in config.tasks}
    model_task: dict[str, str] = {}
    for task in [t for t in config.tasks if t.name == config.default_task] + config.tasks:
        for name in chains[task.name]:
            model_task.setdefault(name, task.name)
    counterfactual = {
        t.name: next((targets[f].price for f in t.fallbacks if targets[f].is_cloud), None)
        for t in config.tasks
    }
    log.info(
        "config loaded: %d tasks, %d models, %d fallbacks (%.0f ms)",
        len(config.tasks),
        len(config.models),
        len(config.fallbacks),
        (time.perf_counter() - started) * 1000,
    )
    return Snapshot(
        config=config,
        classifier=classifier,
        targets=targets,
        chains=chains,
        model_task=model_task,
        counterfactual=counterfactual,
        fallback_on=frozenset(config.fallback_on),
        models_body=_models_body(config),
        cloud={name: target.is_cloud for name, target in targets.items()},
        policies={t.name: t for t in config.tasks if t.escalation or t.test_time_compute},
        midstream={t.name: t.max_mid_stream_switches if t.mid_stream_failover else 0 for t in config.tasks},
    )


def _models_body(config: RouterConfig) -> bytes:
    """``GET /v1/models``: fleet models, fallbacks, task aliases and ``auto``, each saying what it is."""
    now = int(time.time())
    data: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": now,
            "owned_by": "flotilla",
            "flotilla": {"kind": "auto", "default_task": config.default_task},
        }
    ]
    data += [
        {
            "id": t.name,
            "object": "model",
            "created": now,
            "owned_by": "flotilla",
            "flotilla": {"kind": "task", "models": t.models, "fallbacks": t.fallbacks},
        }
        for t in config.tasks
    ]
    data += [
        {
            "id": m.name,
            "object": "model",
            "created": now,
            "owned_by": config.fleet,
            "flotilla": {"kind": "model", "served_model_name": m.served_model_name},
        }
        for m in config.models
    ]
    data += [
        {
            "id": p.name,
            "object": "model",
            "created": now,
            "owned_by": p.provider,
            "flotilla": {"kind": "fallback", "model": p.model},
        }
        for p in config.fallbacks
    ]
    return json.dumps({"object": "list", "data": data}).encode()
