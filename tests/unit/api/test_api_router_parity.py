"""Everything the router would refuse in its config is refused when the fleet is applied.

The router refuses a config in two places: ``RouterConfig`` (its field constraints and
``_references_resolve``) and ``classifying.build_classifier`` (an unknown preset, a pattern that does not
compile). This test walks RouterConfig's JSON schema for every constraint and lists the validators'
rejections, and requires each to be either

- reachable from a fleet: then an edit of a valid fleet that would produce it is refused by
  ``ModelFleet.from_body`` (what the operator runs first; ``test_api_apiserver`` proves the apiserver
  refuses the same edits, except the ``messages.OPERATOR_ONLY`` ones), or
- unreachable: the operator fills the field itself (the reason is given).

A new constraint in RouterConfig fails this test until it is placed in one of the two tables.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fleets import BASE, fleet

from flotilla import errors
from flotilla.api import messages, routerconfig
from flotilla.api.fleet import ModelFleet
from flotilla.api.routerconfig import RouterConfig
from flotilla.render.routing import render_router_config
from flotilla.router import classifying, presets

CODER, POCKET, FRONTIER = "spec__models__0", "spec__models__1", "spec__fallbacks__0"
CLASSIFIER = "spec__routing__classifier"
HEX = "ab" * 32
KEY = {"name": "web", "secretRef": {"name": "keys", "key": "web"}}
JWT = {"jwksURL": "https://idp.example/jwks", "issuer": "https://idp.example", "audience": "f",
       "policies": [{"name": "team"}]}  # fmt: skip
S3 = {
    "endpoint": "https://s3.example",
    "bucket": "traces",
    "accessKeyID": {"name": "s3", "key": "id"},
    "secretAccessKey": {"name": "s3", "key": "secret"},
}
DIST = {"sink": {"s3": S3}}
_CONSTRAINTS = (
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
    "enum", "minItems", "maxItems", "const",
)  # fmt: skip


def _escalation(**escalation: Any) -> dict[str, Any]:
    """A fleet edit: task code escalates with ``escalation`` (verifiers [json] unless given)."""
    task = {"name": "code", "escalation": {"verifiers": ["json"], **escalation}}
    return {"spec__routing__tasks": [task]}


def _s3(**s3: Any) -> dict[str, Any]:
    return {"spec__distillation": {"sink": {"s3": {**S3, **s3}}}}


def _capture(**capture: Any) -> dict[str, Any]:
    task = {"name": "code", "distillation": {"capture": {"sample": 0.5, **capture}}}
    return {"spec__distillation": DIST, "spec__routing__tasks": [task]}


def _shadow(**shadow: Any) -> dict[str, Any]:
    """A fleet edit: task code (served by coder) shadows ``shadow`` (candidate pocket unless given)."""
    task = {"name": "code", "models": ["coder"], "distillation": {"shadow": {"model": "pocket", **shadow}}}
    return {"spec__routing__tasks": [task]}


def _sampling(**sampling: Any) -> dict[str, Any]:
    return {"spec__routing__tasks": [{"name": "code", "testTimeCompute": sampling}]}


REACHABLE: dict[str, tuple[dict[str, Any], str]] = {
    "classifier.model.sha256:pattern": (
        {CLASSIFIER: {"model": {"url": "https://a.example/c.npz", "sha256": HEX.upper()}}},
        messages.CLASSIFIER_SHA256,
    ),
    "classifier.model.url:pattern": (
        {CLASSIFIER: {"model": {"url": "https://user:pw@a.example/c.npz", "sha256": HEX}}},
        messages.CLASSIFIER_URL,
    ),
    "classifier.model.url:maxLength": (
        {CLASSIFIER: {"model": {"url": "https://a.example/" + "c" * 2048, "sha256": HEX}}},
        "at most 2048 characters",
    ),
    "classifier.threshold:minimum": ({"spec__routing__classifierThreshold": -0.1}, "greater than or equal"),
    "classifier.threshold:maximum": ({"spec__routing__classifierThreshold": 1.5}, "less than or equal"),
    "classifier.logSample:minimum": ({CLASSIFIER: {"logSample": -0.1}}, "greater than or equal"),
    "classifier.logSample:maximum": ({CLASSIFIER: {"logSample": 1.5}}, "less than or equal"),
    "coldStartBudgetSeconds:minimum": ({"spec__routing__coldStartBudget": "-1s"}, "should match pattern"),
    "fallbackOn[]:enum": ({"spec__routing__fallbackOn": ["sometimes"]}, "Input should be"),
    "tasks[].maxMidStreamSwitches:minimum": (
        {"spec__routing__tasks": [{"name": "code", "maxMidStreamSwitches": -1}]}, "greater than or equal"
    ),
    "tasks[].maxMidStreamSwitches:maximum": (
        {"spec__routing__tasks": [{"name": "code", "maxMidStreamSwitches": 9}]}, "less than or equal"
    ),
    "fallbacks[].baseURL:minLength": ({f"{FRONTIER}__baseURL": ""}, messages.BASE_URL_SCHEME),
    "fallbacks[].model:minLength": ({f"{FRONTIER}__model": ""}, "at least 1 character"),
    "fallbacks[].name:minLength": ({f"{FRONTIER}__name": ""}, "at least 1 character"),
    "fallbacks[].price.inputPerMTok:minimum": (
        {f"{FRONTIER}__price": {"inputPerMTok": -1}}, "greater than or equal"
    ),
    "fallbacks[].price.outputPerMTok:minimum": (
        {f"{FRONTIER}__price": {"outputPerMTok": -1}}, "greater than or equal"
    ),
    "fallbacks[].provider:enum": ({f"{FRONTIER}__provider": "gemini"}, "Input should be"),
    "fallbacks[].timeoutSeconds:exclusiveMinimum": (
        {f"{FRONTIER}__timeout": "0s"}, messages.FALLBACK_TIMEOUT
    ),
    "models[].maxInFlight:minimum": ({f"{CODER}__maxInFlight": 0}, "greater than or equal to 1"),
    "models[].name:minLength": ({f"{POCKET}__name": ""}, "at least 1 character"),
    "models[].price.inputPerMTok:minimum": (
        {f"{CODER}__price": {"inputPerMTok": -1}}, "greater than or equal"
    ),
    "models[].price.outputPerMTok:minimum": (
        {f"{CODER}__price": {"outputPerMTok": -1}}, "greater than or equal"
    ),
    "models[].servedModelName:minLength": ({f"{CODER}__servedModelName": ""}, "at least 1 character"),
    "tasks[].name:minLength": ({"spec__routing__tasks": [{"name": ""}]}, "at least 1 character"),
    "access.keys[].name:minLength": (
        {"spec__access": {"keys": [{**KEY, "name": ""}]}}, "at least 1 character"
    ),
    "access.keys[].limits.concurrentRequests:minimum": (
        {"spec__access": {"keys": [{**KEY, "limits": {"concurrentRequests": 0}}]}}, "greater than or equal"
    ),
    "access.keys[].limits.requestsPerMinute:minimum": (
        {"spec__access": {"keys": [{**KEY, "limits": {"requestsPerMinute": 0}}]}}, "greater than or equal"
    ),
    "access.keys[].limits.tokensPerMinute:minimum": (
        {"spec__access": {"keys": [{**KEY, "limits": {"tokensPerMinute": 0}}]}}, "greater than or equal"
    ),
    "access.keys[].monthlyBudgetUSD:minimum": (
        {"spec__access": {"keys": [{**KEY, "monthlyBudgetUSD": -1}]}}, "greater than or equal"
    ),
    "tasks[].escalation.minMeanLogprob:minimum": (_escalation(minMeanLogprob=-101), "greater than or equal"),
    "tasks[].escalation.minMeanLogprob:maximum": (_escalation(minMeanLogprob=0.5), "less than or equal"),
    "tasks[].escalation.minAgreement:minimum": (_escalation(minAgreement=-0.1), "greater than or equal"),
    "tasks[].escalation.minAgreement:maximum": (_escalation(minAgreement=1.1), "less than or equal"),
    "tasks[].escalation.verifiers:maxItems": (
        _escalation(verifiers=["json", "complete", "non-empty", "final-answer", "json"]), "at most 4 items"
    ),
    "tasks[].escalation.verifiers[]:enum": (_escalation(verifiers=["vibes"]), "Input should be"),
    "tasks[].escalation.holdTokens:minimum": (_escalation(holdTokens=-1), "greater than or equal"),
    "tasks[].escalation.holdTokens:maximum": (_escalation(holdTokens=257), "less than or equal"),
    "tasks[].testTimeCompute.samples:minimum": (_sampling(samples=0), "greater than or equal"),
    "tasks[].testTimeCompute.samples:maximum": (_sampling(samples=17), "less than or equal"),
    "tasks[].testTimeCompute.select:enum": (_sampling(select="median"), "Input should be"),
    "tasks[].testTimeCompute.temperature:minimum": (_sampling(temperature=-1), "greater than or equal"),
    "tasks[].testTimeCompute.temperature:maximum": (_sampling(temperature=2.5), "less than or equal"),
    "access.keys[].onBudgetExhausted:enum": (
        {"spec__access": {"keys": [{**KEY, "onBudgetExhausted": "maybe"}]}}, "Input should be"
    ),
    "access.jwt.algorithms:minItems": (
        {"spec__access": {"jwt": {**JWT, "algorithms": []}}}, "at least 1 item"
    ),
    "access.jwt.audience:minLength": (
        {"spec__access": {"jwt": {**JWT, "audience": ""}}}, "at least 1 character"
    ),
    "access.jwt.issuer:minLength": ({"spec__access": {"jwt": {**JWT, "issuer": ""}}}, "at least 1 character"),
    "access.jwt.jwksURL:pattern": (
        {"spec__access": {"jwt": {**JWT, "jwksURL": "ftp://idp.example/jwks"}}}, messages.JWKS_URL_SCHEME
    ),
    "access.jwt.policies:minItems": ({"spec__access": {"jwt": {**JWT, "policies": []}}}, "at least 1 item"),
    "access.jwt.policies[].limits.concurrentRequests:minimum": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t", "limits": {"concurrentRequests": 0}}]}}},
        "greater than or equal",
    ),
    "access.jwt.policies[].limits.requestsPerMinute:minimum": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t", "limits": {"requestsPerMinute": 0}}]}}},
        "greater than or equal",
    ),
    "access.jwt.policies[].limits.tokensPerMinute:minimum": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t", "limits": {"tokensPerMinute": 0}}]}}},
        "greater than or equal",
    ),
    "access.jwt.policies[].monthlyBudgetUSD:minimum": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t", "monthlyBudgetUSD": -1}]}}},
        "greater than or equal",
    ),
    "access.jwt.policies[].name:minLength": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": ""}]}}}, "at least 1 character"
    ),
    "access.jwt.policies[].onBudgetExhausted:enum": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t", "onBudgetExhausted": "maybe"}]}}},
        "Input should be",
    ),
    "capture.s3.bucket:maxLength": (_s3(bucket="b" * 64), "at most 63 characters"),
    "capture.s3.bucket:minLength": (_s3(bucket="ab"), messages.SINK_BUCKET),
    "capture.s3.endpoint:pattern": (_s3(endpoint="ftp://s3.example"), messages.SINK_ENDPOINT),
    "capture.s3.prefix:maxLength": (_s3(prefix="p" * 513), "at most 512 characters"),
    "capture.s3.region:minLength": (_s3(region=""), "at least 1 character"),
    "capture.spoolMaxBytes:minimum": (
        {"spec__distillation": {**DIST, "spoolMiB": 1}}, "greater than or equal to 16"
    ),
    "tasks[].capture.from:enum": (_capture(**{"from": "sometimes"}), "Input should be"),
    "tasks[].capture.sample:minimum": (_capture(sample=-0.1), "greater than or equal"),
    "tasks[].capture.sample:maximum": (_capture(sample=1.5), "less than or equal"),
    "tasks[].shadow.model:minLength": (_shadow(model=""), "at least 1 character"),
    "tasks[].shadow.share:exclusiveMinimum": (_shadow(share=0), "greater than 0"),
    "tasks[].shadow.share:maximum": (_shadow(share=1.5), "less than or equal"),
    "tasks[].shadow.score:enum": (_shadow(score="bleu"), "Input should be 'exact-final-answer'"),
    "tasks[].shadow.checks:maxItems": (_shadow(score="checks", checks=["json"] * 5), "at most 4 items"),
    "tasks[].shadow.checks[]:enum": (_shadow(score="checks", checks=["spelling"]), "Input should be 'json'"),
    "tasks[].shadow.maxConcurrent:minimum": (_shadow(maxConcurrent=0), "greater than or equal"),
    "tasks[].shadow.maxConcurrent:maximum": (_shadow(maxConcurrent=1000), "less than or equal"),
    "access.jwt.policyClaim:minLength": (
        {"spec__access": {"jwt": {**JWT, "policyClaim": ""}}}, "at least 1 character"
    ),
}  # fmt: skip

UNREACHABLE: dict[str, str] = {
    "access.keys[].sha256:pattern": "not in the fleet spec: hashlib's hexdigest of the Secret's key",
    "circuitBreaker.cooldownSeconds:exclusiveMinimum": "not in the fleet spec: the router's default",
    "circuitBreaker.failures:minimum": "not in the fleet spec: the router's default",
    "classifier.historyTurns:minimum": "not in the fleet spec: the router's default",
    "maxBodyBytes:minimum": "not in the fleet spec: the router's default",
    "models[].firstByteTimeoutSeconds:exclusiveMinimum": "not in the fleet spec: the router's default",
    "models[].timeoutSeconds:exclusiveMinimum": "not in the fleet spec: the router's default",
    "models[].service.port:minimum": "the runtime's fixed port (runtimes.RUNTIMES[...].port)",
    "models[].service.port:maximum": "the runtime's fixed port (runtimes.RUNTIMES[...].port)",
    "models[].service.path:pattern": "a packed model's /<model>, a fleet model name (API: a DNS label)",
    "tasks:minItems": "rendering always adds the default task (render.routing.render_router_config)",
    "capture.directory.path:minLength": "the volume's fixed mount path (render.naming.TRACES_MOUNT_DIR)",
    "capture.spoolDir:minLength": "the spool's fixed mount path (render.naming.SPOOL_MOUNT_DIR)",
    "capture.flushSeconds:minimum": "not in the fleet spec: the router's default",
    "capture.queueSize:minimum": "not in the fleet spec: the router's default",
    "capture.segmentMaxBytes:minimum": "not in the fleet spec: the router's default",
    "capture.segmentMaxSeconds:exclusiveMinimum": "not in the fleet spec: the router's default",
}

# The validators' rejections: (fleet edit, what the operator says, how the same thing breaks the router).
Breakage = dict[str, Any]
VALIDATORS: dict[str, tuple[dict[str, Any], str, Breakage]] = {
    "duplicate model names": (
        {f"{POCKET}__name": "coder"}, messages.DUPLICATE_MODEL, {"models": [0, 0]}
    ),
    "duplicate fallback names": (
        {"spec__fallbacks": [BASE["spec"]["fallbacks"][0]] * 2}, messages.DUPLICATE_FALLBACK,
        {"fallbacks": [0, 0]},
    ),
    "duplicate task names": (
        {"spec__routing__tasks": [{"name": "a"}, {"name": "a"}]}, messages.DUPLICATE_TASK, {"tasks": [0, 0]}
    ),
    "unknown default task": (
        {"spec__routing__defaultTask": "poetry"}, messages.UNKNOWN_DEFAULT_TASK, {"defaultTask": "poetry"}
    ),
    "task routes to an unknown model": (
        {"spec__routing__tasks": [{"name": "code", "models": ["nope"]}]}, messages.UNKNOWN_ROUTE_MODEL,
        {"task": {"models": ["nope"]}},
    ),
    "task routes to an unknown fallback": (
        {"spec__routing__tasks": [{"name": "code", "fallbacks": ["nope"]}]}, messages.UNKNOWN_ROUTE_FALLBACK,
        {"task": {"fallbacks": ["nope"]}},
    ),
    "unknown preset": (
        {"spec__routing__tasks": [{"name": "code", "preset": "poetry"}]}, "Input should be 'code'",
        {"task": {"preset": "poetry"}},
    ),
    "escalation without a criterion": (
        {"spec__routing__tasks": [{"name": "code", "escalation": {"holdTokens": 8}}]},
        messages.ESCALATION_CRITERION, {"task": {"escalation": {"holdTokens": 8}}},
    ),
    "capture sink: none or two": (
        {"spec__distillation": {"sink": {"s3": S3, "volume": {"claimName": "traces"}}}}, messages.SINK_ONE,
        {"capture": {"spoolDir": "/spool"}},
    ),
    "redaction pattern that does not compile": (
        {"spec__distillation": {**DIST, "redact": ["("]}}, messages.INVALID_REDACT_PATTERN,
        {"capture": {"directory": {"path": "/traces"}, "redact": ["("]}},
    ),
    "shadow of an unknown model": (
        _shadow(model="nope"), messages.SHADOW_UNKNOWN_MODEL,
        {"task": {"shadow": {"model": "nope", "share": 0.5}}},
    ),
    "shadow judged by an unknown fallback": (
        _shadow(score="judge", judge="nope"), messages.SHADOW_UNKNOWN_JUDGE,
        {"task": {"shadow": {"model": "pocket", "share": 0.5, "score": "judge", "judge": "nope"}}},
    ),
    "pattern that does not compile": (
        {"spec__routing__tasks": [{"name": "code", "match": {"patterns": ["("]}}]}, messages.INVALID_PATTERN,
        {"task": {"match": {"keywords": [], "patterns": ["("], "examples": []}}},
    ),
}  # fmt: skip
VALIDATOR_RAISES = {
    # how many rejections each router-side validator has, counted in its source below
    RouterConfig._references_resolve: 6,  # duplicates (models, fallbacks, tasks), default, model, fallback,
    # shadow model, shadow judge
    routerconfig.Escalation._decides: 1,
    routerconfig.CaptureSettings._one_sink: 2,
    classifying.classifiers._task_preset: 1,
    classifying.rules.TaskRules.__init__: 1,
}


def _constraints(node: dict[str, Any], defs: dict[str, Any], path: str, found: set[str]) -> None:
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    for variant in node.get("anyOf", []):
        _constraints(variant, defs, path, found)
    found.update(f"{path}:{key}" for key in _CONSTRAINTS if key in node)
    for name, sub in node.get("properties", {}).items():
        _constraints(sub, defs, f"{path}.{name}" if path else name, found)
    if "items" in node:
        _constraints(node["items"], defs, f"{path}[]", found)


def test_every_router_constraint_is_placed() -> None:
    schema = RouterConfig.model_json_schema(by_alias=True)
    found: set[str] = set()
    _constraints(schema, schema.get("$defs", {}), "", found)
    assert not REACHABLE.keys() & UNREACHABLE.keys()
    assert found == REACHABLE.keys() | UNREACHABLE.keys()


def test_every_router_validator_rejection_is_placed() -> None:
    for function, count in VALIDATOR_RAISES.items():
        assert inspect.getsource(function).count("raise ") == count, function.__qualname__
    assert sum(VALIDATOR_RAISES.values()) + 2 == len(VALIDATORS)  # the duplicate check raises for 3 kinds


@pytest.mark.parametrize("case", list(REACHABLE), ids=list(REACHABLE))
def test_operator_refuses_what_the_router_constraint_would(case: str) -> None:
    changes, message = REACHABLE[case]
    with pytest.raises(errors.InvalidSpecError) as caught:
        ModelFleet.from_body(fleet(**changes))
    assert message in str(caught.value)


@pytest.mark.parametrize("case", list(VALIDATORS), ids=list(VALIDATORS))
def test_operator_refuses_what_the_router_validators_would(case: str) -> None:
    changes, message, breakage = VALIDATORS[case]
    with pytest.raises(errors.InvalidSpecError) as caught:
        ModelFleet.from_body(fleet(**changes))
    assert message in str(caught.value)
    # ... and the router really refuses it: break a rendered config the same way
    wire = render_router_config(ModelFleet.from_body(BASE)).to_wire()
    for key, value in breakage.items():
        if key == "task":
            wire["tasks"][0] = {**wire["tasks"][0], **value}
        elif isinstance(value, list):
            wire[key] = [wire[key][i] for i in value]
        else:
            wire[key] = value
    with pytest.raises((ValueError, errors.ConfigError)):
        classifying.build_classifier(RouterConfig.model_validate(wire), use_embeddings=False)


def test_unreachable_fields_are_filled_by_the_operator() -> None:
    config = render_router_config(ModelFleet.from_body(BASE))
    defaults = RouterConfig(default_task="x", tasks=[routerconfig.TaskRoute(name="x")])
    assert (config.circuit_breaker, config.max_body_bytes) == (
        defaults.circuit_breaker,
        defaults.max_body_bytes,
    )
    assert config.classifier.history_turns == defaults.classifier.history_turns
    for model in config.models:
        assert model.service is not None and 1 <= model.service.port <= 65535
        assert (model.timeout_seconds, model.first_byte_timeout_seconds) == (120.0, 30.0)


def test_preset_names_are_the_routers() -> None:
    assert set(routerconfig.PresetName.__args__) == set(presets.PRESETS)
