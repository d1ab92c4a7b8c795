"""Helpers for the chart tests: the pinned helm binary, rendering, and normalised YAML.

helm is the one `e2e/cluster build --only helm` builds (pinned in e2e/gomod/helm); nothing here is mocked:
`helm template`, `helm lint` and `helm install` are the real binary against the real chart.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from clusterlib import settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flotilla"
GOLDEN = Path(__file__).resolve().parent / "golden"


def helm_binary() -> Path:
    """The pinned helm; a clear failure (not a skip) when it has not been built yet."""
    path = settings.load().binary("helm")
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only helm` first")
    return path


def helm(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run helm (cluster commands use $KUBECONFIG); on failure (when `check`) raise with its output."""
    done = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def set_flags(values: Mapping[str, Any] | None) -> list[str]:
    """One `--set-json KEY=JSON` per value (no temporary values file)."""
    return [
        flag for key, value in (values or {}).items() for flag in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def template(
    values_file: Path | None = None,
    values: Mapping[str, Any] | None = None,
    release: str = "flotilla",
    namespace: str = "flotilla-system",
) -> list[dict[str, Any]]:
    """`helm template` of the chart (templates only, as helm installs crds/ separately), parsed."""
    args = ["template", release, str(CHART), "--namespace", namespace, *set_flags(values)]
    if values_file is not None:
        args += ["--values", str(values_file)]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def normalise(objects: Iterable[Mapping[str, Any]]) -> str:
    """One YAML stream, objects sorted by kind/namespace/name, keys sorted: formatting-independent."""
    ordered = sorted(objects, key=key)
    return yaml.safe_dump_all(ordered, sort_keys=True, default_flow_style=False, width=120)


def by_kind(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[key(o) for o in found]}"
    return found[0]


def container_env(deployment: Mapping[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}
