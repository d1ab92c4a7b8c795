"""The generated CRD is a structural schema Kubernetes accepts, documented everywhere, and committed fresh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from flotilla.api import capabilities, crd, fleet, messages
from flotilla.api.commands import dump_crds
from flotilla.api.fleet import ModelFleet
from flotilla.runtimes import RUNTIMES

ROOT = Path(__file__).resolve().parents[3]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def _version() -> dict[str, Any]:
    version: dict[str, Any] = crd.render_crds()[0]["spec"]["versions"][0]
    return version


def test_crd_identity() -> None:
    [definition] = crd.render_crds()
    assert definition["metadata"]["name"] == "modelfleets.flotilla.dev"
    spec = definition["spec"]
    assert (spec["group"], spec["scope"]) == ("flotilla.dev", "Namespaced")
    assert spec["names"]["shortNames"] == ["mf"]
    assert spec["names"]["kind"] == fleet.KIND
    assert _version()["name"] == "v1alpha1"
    assert _version()["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c["jsonPath"] for c in _version()["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Models": ".status.modelsReady",
        "Spend": ".status.access.summary",
        "Candidates": ".status.candidatesSummary",
        "Training": ".status.trainingSummary",
        "Endpoint": ".status.endpoint",
        "Age": ".metadata.creationTimestamp",
    }


def test_schema_is_structural() -> None:
    text = json.dumps(crd.render_crds())
    for forbidden in ('"$ref"', '"anyOf"', '"allOf"', '"oneOf"', '"null"', '"title"', '"$defs"', '"const"'):
        assert forbidden not in text
    for path, node in _walk(_version()["schema"]["openAPIV3Schema"]):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if node.get("type") == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, f"{path} is an untyped object"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_every_field_has_a_description() -> None:
    for path, node in _walk(_version()["schema"]["openAPIV3Schema"]):
        if path.endswith(("[]", "{}")) or path == ".metadata":  # metadata may only say `type: object`
            continue
        assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"


def test_spec_strings_and_lists_are_bounded_for_cel_cost() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"spec{path} needs maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"spec{path} needs maxItems"


def test_runtime_enum_and_tables_agree() -> None:
    models = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["models"]
    assert models["items"]["properties"]["runtime"]["enum"] == list(RUNTIMES)
    assert list(capabilities.CAPABILITIES) == list(RUNTIMES)
    for name, runtime in RUNTIMES.items():
        assert runtime.name == name


def test_every_message_has_a_cel_rule() -> None:
    cel_messages = {message for _, _, message in crd.validation_rules()}
    for name in dir(messages):
        value = getattr(messages, name)
        if name.isupper() and isinstance(value, str) and value not in messages.OPERATOR_ONLY:
            assert value in cel_messages, f"messages.{name} is not enforced by the apiserver"
    for caps in capabilities.CAPABILITIES.values():
        assert caps.source_message() in cel_messages
        assert caps.quantization_message() in cel_messages
        if caps.gpu == "required":
            assert caps.gpu_message() in cel_messages


def test_crd_defaults_match_pydantic_defaults() -> None:
    """An object defaulted by the apiserver parses to the same spec pydantic fills in itself."""
    minimal = {"models": [{"name": "m", "runtime": "llamacpp", "source": {"uri": "pvc://c/m.gguf"}}]}
    spec_schema = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def apply_defaults(node: dict[str, Any], value: Any) -> Any:
        if isinstance(value, dict):
            for name, sub in node.get("properties", {}).items():
                if name not in value and "default" in sub:
                    value[name] = json.loads(json.dumps(sub["default"]))
                if name in value:
                    value[name] = apply_defaults(sub, value[name])
        if isinstance(value, list) and "items" in node:
            value = [apply_defaults(node["items"], v) for v in value]
        return value

    defaulted = apply_defaults(spec_schema, json.loads(json.dumps(minimal)))
    body = {"metadata": {"name": "f"}}
    assert ModelFleet.from_body({**body, "spec": defaulted}) == ModelFleet.from_body(
        {**body, "spec": minimal}
    )


def test_committed_crd_is_fresh() -> None:
    committed = (ROOT / "crds" / "modelfleets.flotilla.dev.yaml").read_text(encoding="utf-8")
    assert committed == dump_crds(), "crds/ is stale: run scripts/generate"
    assert list(yaml.safe_load_all(committed)) == crd.render_crds()


def test_generate_check_passes() -> None:
    """scripts/generate --check: crds/ and docs/reference/ match the models."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_flotilla_crds_prints_the_crd() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "crds"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert list(yaml.safe_load_all(result.stdout)) == crd.render_crds()
