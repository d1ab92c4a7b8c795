"""The fleet's routing table (`RouterConfig`), the contract the router reads from the ConfigMap.

Defaults filled in here: without `routing.tasks`, one task per task type the models declare; a task without
`models` uses the models declaring it; without `fallbacks`, every fallback of the fleet; the default task is
`chat` when there is one, else the first.
"""

from __future__ import annotations

from collections.abc import Mapping

from flotilla.api import routerconfig as rc
from flotilla.api import spend
from flotilla.api.access import AccessPolicy
from flotilla.api.capabilities import CAPABILITIES
from flotilla.api.common import parse_duration
from flotilla.api.fleet import ModelFleet, ModelSpec, TaskSpec
from flotilla.packing import plans
from flotilla.render import naming, packs, rayservice
from flotilla.runtimes import RUNTIMES

DEFAULT_TASK = "chat"


def _task_specs(fleet: ModelFleet) -> list[TaskSpec]:
    """The routing tasks as written, or one per task type the models declare (in order of appearance)."""
    if fleet.spec.routing.tasks:
        return list(fleet.spec.routing.tasks)
    names: list[str] = []
    for model in fleet.spec.models:
        names += [t for t in model.tasks if t not in names]
    return [TaskSpec(name=n) for n in names or [DEFAULT_TASK]]


def candidate_state(fleet: ModelFleet, task: str, model: str) -> str:
    """Shadowing, Promoted or RolledBack: the operator's decision on ``model`` as ``task``'s candidate, from
    ``status.candidates`` (Shadowing until it decided)."""
    for candidate in (fleet.status.candidates if fleet.status else None) or []:
        if candidate.task == task and candidate.model == model:
            return candidate.state
    return "Shadowing"


def _shadow(fleet: ModelFleet, task: TaskSpec) -> tuple[str | None, rc.Shadow | None]:
    """The task's promoted candidate (first model from now on), or the shadow the router runs, or neither."""
    spec = task.distillation.shadow if task.distillation else None
    if spec is None:
        return None, None
    state = candidate_state(fleet, task.name, spec.model)
    if state == "Promoted":
        return spec.model, None
    if state == "RolledBack":
        return None, None
    shadow = rc.Shadow(
        model=spec.model,
        share=spec.share,
        score=spec.score,
        judge=spec.judge,
        checks=list(spec.checks),
        max_concurrent=spec.max_concurrent,
    )
    return None, shadow


def _route(fleet: ModelFleet, task: TaskSpec) -> rc.TaskRoute:
    models = fleet.spec.task_models(task)
    promoted, shadow = _shadow(fleet, task)
    if promoted is not None:  # promotion changes the rendered routing, never the user's spec
        models = [promoted, *(m for m in models if m != promoted)]
    fallbacks = task.fallbacks if task.fallbacks is not None else [f.name for f in fleet.spec.fallbacks]
    match = rc.TaskMatch(
        keywords=task.match.keywords, patterns=task.match.patterns, examples=task.match.examples
    )
    escalation = task.escalation
    sampling = task.test_time_compute
    return rc.TaskRoute(
        name=task.name,
        preset=task.preset,
        match=match,
        models=models,
        fallbacks=fallbacks,
        escalation=None if escalation is None else rc.Escalation(**escalation.model_dump()),
        test_time_compute=None if sampling is None else rc.Sampling(**sampling.model_dump()),
        mid_stream_failover=task.mid_stream_failover,
        max_mid_stream_switches=task.max_mid_stream_switches,
        capture=_task_capture(fleet, task),
        shadow=shadow,
    )


def _task_capture(fleet: ModelFleet, task: TaskSpec) -> rc.Capture | None:
    spec = task.distillation.capture if task.distillation else None
    if spec is None or fleet.spec.distillation is None:
        return None
    return rc.Capture(sample=spec.sample, source=spec.source)


def _capture(fleet: ModelFleet) -> rc.CaptureSettings | None:
    """The sink as the router reaches it: S3 credentials from env (``render.router``), a volume mounted."""
    spec = fleet.spec.distillation
    if spec is None:
        return None
    s3 = spec.sink.s3
    sink = (
        {
            "s3": rc.S3Sink(
                endpoint=s3.endpoint,
                bucket=s3.bucket,
                prefix=s3.prefix,
                region=s3.region,
                access_key_env=naming.SINK_ACCESS_KEY_ENV,
                secret_key_env=naming.SINK_SECRET_KEY_ENV,
            )
        }
        if s3 is not None
        else {"directory": rc.DirectorySink(path=naming.TRACES_MOUNT_DIR)}
    )
    return rc.CaptureSettings(
        redact=list(spec.redact),
        spool_dir=naming.SPOOL_MOUNT_DIR,
        spool_max_bytes=spec.spool_mib * 2**20,
        **sink,
    )


def _upstream(fleet: ModelFleet, model: ModelSpec, plan: plans.Plan) -> rc.ModelUpstream:
    """Where the router finds the model: its own Service, or its pack's with the path ``/<model>``."""
    pod = plan.pod_of(model.name)
    if pod is None:
        service = rc.ServiceRef(
            namespace=fleet.namespace,
            name=naming.model_service_name(fleet, model),
            port=RUNTIMES[model.runtime].port,  # EndpointSlices list pod (target) ports
        )
        scale_from_zero = model.replicas.min == 0
        multiple_choices = CAPABILITIES[model.runtime].multiple_choices
    else:
        kuberay = any(p.name == pod.pack and p.engine == "kuberay" for p in fleet.spec.packs)
        service = rc.ServiceRef(
            namespace=fleet.namespace,
            name=rayservice.serve_service(fleet, pod) if kuberay else naming.pack_name(fleet, pod.name),
            port=naming.PACK_PORT,  # KubeRay's serve port is pack-serve's: 8000
            path=f"/{model.name}",
        )
        scale_from_zero = packs.min_replicas(packs.members(fleet, pod)) == 0
        multiple_choices = (
            pod.kind.gpus > 0 and CAPABILITIES["vllm"].multiple_choices
        )  # llama-cpp-python: n=1
    return rc.ModelUpstream(
        name=model.name,
        served_model_name=model.model_name,
        service=service,
        price=model.price,
        max_in_flight=model.max_in_flight,
        scale_from_zero=scale_from_zero,
        multiple_choices=multiple_choices,
    )


def render_router_config(fleet: ModelFleet, key_hashes: Mapping[str, str] | None = None) -> rc.RouterConfig:
    """The routing table for the fleet's router (ConfigMap key `router.yaml`, YAML of `to_wire()`).

    ``key_hashes``: access key name → sha256 of the key, read from the Secrets by the reconciler; a key
    without one is left out (its clients get 401), so a fleet rendered without the cluster refuses all.
    """
    routing = fleet.spec.routing
    plan = plans.plan(fleet.spec)
    tasks = [_route(fleet, t) for t in _task_specs(fleet)]
    names = [t.name for t in tasks]
    default = routing.default_task or (DEFAULT_TASK if DEFAULT_TASK in names else names[0])
    if default not in names:  # a default named only by a model's tasks while routes are explicit
        tasks.append(_route(fleet, TaskSpec(name=default)))
    fallbacks = [
        rc.ProviderUpstream(
            name=f.name,
            provider=f.provider,
            base_url=f.effective_base_url,
            model=f.model,
            api_key_env=naming.api_key_env(f) if f.api_key is not None else None,
            price=f.price,
            timeout_seconds=parse_duration(f.timeout),
        )
        for f in fleet.spec.fallbacks
    ]
    return rc.RouterConfig(
        fleet=fleet.name,
        namespace=fleet.namespace,
        default_task=default,
        tasks=tasks,
        models=[_upstream(fleet, m, plan) for m in fleet.spec.models],
        fallbacks=fallbacks,
        fallback_on=list(routing.fallback_on),
        cold_start_budget_seconds=parse_duration(routing.cold_start_budget),
        classifier=rc.ClassifierSettings(
            threshold=routing.classifier_threshold,
            model=_classifier(fleet),
            log_sample=routing.classifier.log_sample,
            log_prompts=routing.classifier.log_prompts,
        ),
        access=_access(fleet, key_hashes or {}),
        capture=_capture(fleet),
    )


def _access(fleet: ModelFleet, key_hashes: Mapping[str, str]) -> rc.AccessConfig | None:
    access = fleet.spec.access
    if access is None:
        return None
    keys = [
        rc.KeyPolicy(sha256=key_hashes[key.name], **dict(_policy(key)))
        for key in access.keys
        if key.name in key_hashes
    ]
    unique = {k.sha256: k for k in keys}  # two policies with one key: the first wins (a condition says so)
    keys = [k for k in keys if unique[k.sha256] is k]
    jwt = access.jwt
    return rc.AccessConfig(
        keys=keys,
        jwt=rc.JwtConfig(
            jwks_url=jwt.jwks_url,
            issuer=jwt.issuer,
            audience=jwt.audience,
            algorithms=list(jwt.algorithms),
            policy_claim=jwt.policy_claim,
            policies=[_policy(p) for p in jwt.policies],
        )
        if jwt
        else None,
        spend_file=f"{naming.SPEND_MOUNT_DIR}/{spend.SPEND_KEY}",
    )


def _policy(policy: AccessPolicy) -> rc.PolicyConfig:
    return rc.PolicyConfig(
        name=policy.name,
        tasks=policy.tasks,
        models=policy.models,
        cloud_fallbacks=policy.cloud_fallbacks,
        limits=rc.KeyLimitsConfig(**policy.limits.model_dump()) if policy.limits else rc.KeyLimitsConfig(),
        monthly_budget_usd=policy.monthly_budget_usd,
        on_budget_exhausted=policy.on_budget_exhausted,
        capture=policy.capture,
    )


def _classifier(fleet: ModelFleet) -> rc.ClassifierModel | None:
    """The spec's custom classifier as written (the reconciler substitutes the last accepted one for a
    rejected one before rendering: ``reconcile.desiring.with_classifier``)."""
    model = fleet.spec.routing.classifier.model
    return None if model is None else rc.ClassifierModel(url=model.url, sha256=model.sha256)
