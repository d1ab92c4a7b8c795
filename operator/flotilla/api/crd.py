"""Generate the ModelFleet CustomResourceDefinition from the pydantic models.

pydantic's JSON Schema is close to, but not, a Kubernetes *structural* schema: it uses `$ref`/`$defs`,
`anyOf [X, null]` for optional fields, numeric `exclusiveMinimum`, `const`, titles. `to_structural` rewrites
it (hand-written because no maintained library does this conversion for pydantic v2) and insists that every
property has a description, so `kubectl explain mf.spec.models` always helps.
"""

from __future__ import annotations

import copy
from typing import Any

from flotilla.api import fleet, messages
from flotilla.api.status import FleetStatus

_DROP = {"title", "$defs", "discriminator"}
_INT_OR_STRING = "x-kubernetes-int-or-string"


class SchemaError(ValueError):
    """The models produce a schema Kubernetes would not accept (a bug in the models, caught by tests)."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a `$ref` (or single-element `allOf`), letting the referring node's keys win."""
    ref_holder = node
    if "allOf" in node and len(node["allOf"]) == 1:
        ref_holder = node["allOf"][0]
    if "$ref" not in ref_holder:
        return node
    target: dict[str, Any] = copy.deepcopy(defs[ref_holder["$ref"].rsplit("/", 1)[-1]])
    overrides = {k: v for k, v in node.items() if k not in ("$ref", "allOf")}
    target.update(overrides)
    return target


def _unwrap_optional(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`anyOf [X, {type: null}]` -> X (optional = not required); `anyOf [int, str]` -> int-or-string."""
    variants = [v for v in node["anyOf"] if v.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get(_INT_OR_STRING) or any(v.get(_INT_OR_STRING) for v in variants):
        return {_INT_OR_STRING: True, **{k: v for k, v in rest.items() if k in ("description", "default")}}
    if len(variants) != 1:
        raise SchemaError(f"cannot express a union of {len(variants)} types structurally: {variants}")
    merged = _resolve(variants[0], defs)
    merged = {**merged, **rest}
    if merged.get("default", 0) is None:
        del merged["default"]
    return merged


def to_structural(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema node (recursively) into a Kubernetes structural schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _unwrap_optional(node, defs)
        node = _resolve(node, defs)
    if node.get(_INT_OR_STRING):
        return {k: v for k, v in node.items() if k in (_INT_OR_STRING, "description", "default")}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "description":
            out[key] = " ".join(str(value).split())
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: to_structural(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = to_structural(value, defs, f"{path}{{}}")
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
        for name, sub in out["properties"].items():
            if "description" not in sub:
                raise SchemaError(f"{path}.{name} has no description: add a docstring under the field")
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _model_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return to_structural(raw, raw.get("$defs", {}), model.__name__)


def open_api_schema() -> dict[str, Any]:
    """The `openAPIV3Schema` of the ModelFleet version."""
    spec = _model_schema(fleet.ModelFleetSpec)
    status = _model_schema(FleetStatus)
    # kopf keeps handler progress under status (status.kopf); let it through instead of pruning it.
    status["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "type": "object",
        "description": "A fleet of small language models (GPU and CPU) with cloud fallbacks behind one "
        "OpenAI-compatible router that picks a model per task type.",
        "required": ["spec"],
        "x-kubernetes-validations": [
            {"rule": f"self.metadata.name.size() <= {fleet.MAX_FLEET_NAME}", "message": messages.FLEET_NAME}
        ],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion of the object: flotilla.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": "Kind of the object: ModelFleet."},
            "metadata": {"type": "object"},  # the apiserver forbids anything more here
            "spec": spec,
            "status": status,
        },
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether every model and the router are ready.",
    },
    {
        "name": "Models",
        "type": "string",
        "jsonPath": ".status.modelsReady",
        "description": "Ready/total models.",
    },
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "description": "Router base URL."},
    {
        "name": "Spend",
        "type": "string",
        "jsonPath": ".status.access.summary",
        "description": "Cloud spend per API key this month (UTC).",
    },
    {
        "name": "Candidates",
        "type": "string",
        "jsonPath": ".status.candidatesSummary",
        "description": "Candidate models per task: shadowing, promoted or rolled back, agreed/scored.",
    },
    {
        "name": "Training",
        "type": "string",
        "jsonPath": ".status.trainingSummary",
        "description": "Latest adapter version per training task and its Job's phase.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def render_crds() -> list[dict[str, Any]]:
    """Every CRD Flotilla installs (today: ModelFleet)."""
    return [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": f"{fleet.PLURAL}.{fleet.GROUP}",
                "labels": {"app.kubernetes.io/part-of": "flotilla"},
            },
            "spec": {
                "group": fleet.GROUP,
                "scope": "Namespaced",
                "names": {
                    "kind": fleet.KIND,
                    "listKind": f"{fleet.KIND}List",
                    "plural": fleet.PLURAL,
                    "singular": fleet.SINGULAR,
                    "shortNames": [fleet.SHORT_NAME],
                    "categories": ["flotilla"],
                },
                "versions": [
                    {
                        "name": fleet.VERSION,
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "additionalPrinterColumns": PRINTER_COLUMNS,
                        "schema": {"openAPIV3Schema": open_api_schema()},
                    }
                ],
            },
        }
    ]


def validation_rules(schema: dict[str, Any] | None = None, path: str = "") -> list[tuple[str, str, str]]:
    """Every CEL rule in the schema as (path, rule, message), for docs and tests."""
    node = open_api_schema() if schema is None else schema
    found = [(path or ".", r["rule"], r["message"]) for r in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        found += validation_rules(sub, f"{path}.{name}")
    if "items" in node:
        found += validation_rules(node["items"], f"{path}[]")
    return found
