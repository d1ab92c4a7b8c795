"""`flotilla render FILE` as a person runs it: YAML out, one-line errors and exit codes, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def flotilla(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotilla.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
    )


def test_renders_the_realistic_example_directory() -> None:
    result = flotilla("render", str(ROOT / "examples" / "02-realistic"))
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "assistants-coder") in names
    assert ("HorizontalPodAutoscaler", "assistants-coder") in names
    assert ("ConfigMap", "assistants-router") in names
    assert all(o["kind"] != "Secret" for o in objects)  # the Secret beside the fleet is not Flotilla's
    assert "router.yaml: |" in result.stdout  # the routing table is readable in a diff


def test_namespace_flag_and_stdin() -> None:
    text = (ROOT / "examples" / "01-minimal" / "fleet.yaml").read_text()
    result = flotilla("render", "-", "--namespace", "team-a", stdin=text)
    assert result.returncode == 0, result.stderr
    assert {o["metadata"]["namespace"] for o in yaml.safe_load_all(result.stdout)} == {"team-a"}


def test_settings_come_from_the_environment() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flotilla.cli",
            "render",
            str(ROOT / "examples" / "01-minimal" / "fleet.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"FLOTILLA_LLAMACPP_IMAGE": "local/llama:1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "image: local/llama:1" in result.stdout


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = flotilla("render", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith("flotilla render: cannot read ")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_bad_yaml_and_no_fleet_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [\n")
    result = flotilla("render", str(bad))
    assert (result.returncode, "is not valid YAML" in result.stderr) == (2, True)
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = flotilla("render", str(other))
    assert result.returncode == 2
    assert "holds no ModelFleet" in result.stderr


def test_invalid_spec_is_a_one_line_failure(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ModelFleet\nmetadata: {name: x}\nspec:\n"
        "  models:\n  - {name: a, runtime: vllm, source: {uri: 'hf://o/r'}}\n"
    )
    result = flotilla("render", str(path))
    assert result.returncode == 1
    assert result.stderr == (
        "flotilla render: spec.models[0]: runtime vllm needs a GPU: set accelerator.gpus to 1 or more "
        "(or use runtime llamacpp for CPU)\n"
    )


def test_prints_the_packing_plan_as_comments_and_renders_a_pack_pod_for_the_packed_model() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "03-local" / "fleet.yaml").read_text())
    plain = flotilla("render", "-", stdin=yaml.safe_dump(doc))
    assert plain.returncode == 0 and "packing plan" not in plain.stdout  # nothing opted in
    doc["spec"]["placement"] = {"pack": "auto"}
    coder, math, pocket = doc["spec"]["models"]
    coder["accelerator"]["product"] = "NVIDIA-L4"
    coder["placement"], math["placement"], pocket["placement"] = {"memory": "1100Mi"}, {"memory": "3Gi"}, {}
    packed = flotilla("render", "-", stdin=yaml.safe_dump(doc))
    assert packed.returncode == 0, packed.stderr
    head = packed.stdout.split("---", 1)[0].splitlines()
    assert head[0].startswith("# packing plan of default/assistants (each pack pod runs flotilla pack-serve")
    assert re.fullmatch(
        r"#   auto-1 \[1x NVIDIA-L4\]: coder: [0-9.]+Gi of 21\.6Gi usable \(24Gi in all\)", head[1]
    )
    assert head[2].startswith("#   math: not packed: BudgetUnknown: the memory of a 1x GPU (any product) pod")
    assert head[3].startswith("#   pocket: not packed: SizeUnknown: the size of its weights is unknown")
    doc["spec"]["placement"] = {"pack": "none"}
    unpacked = flotilla("render", "-", stdin=yaml.safe_dump(doc))
    assert "packing plan" not in unpacked.stdout

    # The packed model's own Deployment and Service give way to its pack's; the others are unchanged.
    def by_key(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(stdout)}

    packed_objects, unpacked_objects = by_key(packed.stdout), by_key(unpacked.stdout)
    gone = set(unpacked_objects) - set(packed_objects)
    assert {("Deployment", "assistants-coder"), ("Service", "assistants-coder")} <= gone
    assert {name for _, name in gone} == {"assistants-coder"}
    added = set(packed_objects) - set(unpacked_objects)
    assert {(k, "assistants-pack-auto-1") for k in ("ConfigMap", "Deployment", "Service")} <= added
    assert {name for _, name in added} == {"assistants-pack-auto-1"}
    for key in set(packed_objects) & set(unpacked_objects) - {("ConfigMap", "assistants-router")}:
        assert packed_objects[key] == unpacked_objects[key], key
