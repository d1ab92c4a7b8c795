"""Building blocks shared by the ModelFleet spec: the base model, Kubernetes-shaped fields, durations.

Every field carries a docstring: the CRD generator turns them into schema descriptions, so
`kubectl explain mf.spec.models` and docs/reference say the same thing as the code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flotilla.api import messages

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: child object names and Service names are built from it."""

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# Limits keep the apiserver's CEL cost estimate bounded (it rejects CRDs whose rules could cost too much).
MAX_NAME = 32
MAX_SHORT = 253
MAX_TEXT = 2048
MAX_LIST = 32
MAX_MAP = 32


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``90s``, ``5m`` or ``1m30s``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 500ms, 30s, 5m or 1h")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
Duration = Annotated[str, Field(max_length=32, pattern=DURATION_PATTERN)]
Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]
ShortText = Annotated[str, Field(max_length=MAX_SHORT)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


def compiled_patterns(patterns: list[str], message: str) -> list[str]:
    """``patterns`` unchanged if each compiles as a Python regex, else a ValueError with ``message``: a
    CEL rule cannot compile a Python regex, so the apiserver accepts any string and the operator refuses
    the fleet (Ready=False, InvalidSpec) before any router sees it."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{message}: {pattern!r}: {exc}") from None
    return patterns


def cel_rules(*rules: tuple[str, str]) -> ConfigDict:
    """Model config carrying CEL ``x-kubernetes-validations`` (rule, message) into the generated CRD.

    Each rule is repeated as a pydantic validator with the same message (see `flotilla.api.messages`).
    """
    return ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}
    )


def object_default() -> dict[str, Any]:
    """``json_schema_extra`` for a nested object field whose own fields all have defaults.

    Kubernetes applies nested defaults only when the parent object exists; ``default: {}`` makes it exist.
    """
    return {"default": {}}


class SpecModel(BaseModel):
    """Base for spec models: camelCase on the wire, snake_case in Python, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class SecretKeySelector(SpecModel):
    """A key of a Secret in the fleet's namespace. Flotilla never reads the value; pods get it as env."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Key inside the Secret."""


class ConfigMapKeySelector(SpecModel):
    """A key of a ConfigMap in the fleet's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Name of the ConfigMap."""
    key: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Key inside the ConfigMap."""


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from (exactly one of the fields)."""

    model_config = cel_rules(("has(self.secretKeyRef) != has(self.configMapKeyRef)", messages.ENV_SOURCE))

    secret_key_ref: SecretKeySelector | None = None
    """Take the value from a Secret key."""
    config_map_key_ref: ConfigMapKeySelector | None = None
    """Take the value from a ConfigMap key."""

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError(messages.ENV_SOURCE)
        return self


class EnvVar(SpecModel):
    """An environment variable added to the model server container (overrides Flotilla's own)."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
    """Variable name."""
    value: Text | None = None
    """Literal value. Do not put secrets here: use valueFrom.secretKeyRef."""
    value_from: EnvVarSource | None = None
    """Take the value from a Secret or ConfigMap key instead of `value`."""

    def to_k8s(self) -> dict[str, Any]:
        """The container `env` entry."""
        entry: dict[str, Any] = {"name": self.name}
        if self.value_from is not None:
            entry["valueFrom"] = self.value_from.model_dump(by_alias=True, exclude_none=True)
        else:
            entry["value"] = self.value or ""
        return entry


class Toleration(SpecModel):
    """A Kubernetes toleration added to the pods (as in a Pod spec)."""

    key: ShortText | None = None
    """Taint key; empty with operator Exists tolerates everything."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: ShortText | None = None
    """Taint value to match with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = None
    """For NoExecute: how long the pod stays bound after the taint appears."""

    def to_k8s(self) -> dict[str, Any]:
        """The pod `tolerations` entry."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Resources(SpecModel):
    """Compute resources of a container, as in a Pod spec (quantities such as `2`, `500m`, `4Gi`)."""

    requests: Annotated[dict[str, Quantity], Field(max_length=MAX_MAP)] = Field(default_factory=dict)
    """Resources reserved for the container, e.g. {cpu: "2", memory: 4Gi}."""
    limits: Annotated[dict[str, Quantity], Field(max_length=MAX_MAP)] = Field(default_factory=dict)
    """Upper bounds, e.g. {memory: 8Gi}. GPU limits come from `accelerator`, not from here."""

    def to_k8s(self) -> dict[str, Any]:
        """The container `resources` (empty maps left out)."""
        out: dict[str, Any] = {}
        if self.requests:
            out["requests"] = {k: str(v) for k, v in sorted(self.requests.items())}
        if self.limits:
            out["limits"] = {k: str(v) for k, v in sorted(self.limits.items())}
        return out


__all__ = [
    "DURATION_PATTERN",
    "NAME_PATTERN",
    "ConfigMapKeySelector",
    "Duration",
    "EnvVar",
    "EnvVarSource",
    "Name",
    "Quantity",
    "Resources",
    "SecretKeySelector",
    "SpecModel",
    "Toleration",
    "cel_rules",
    "object_default",
    "parse_duration",
]
