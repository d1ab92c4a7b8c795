"""Router configs made from built-in preset names, for classifying without a config file."""

from __future__ import annotations

from collections.abc import Sequence

import pydantic

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router import presets


def preset_config(
    tasks: Sequence[str], default_task: str, threshold: float | None = None
) -> routerconfig.RouterConfig:
    """A config whose tasks are ``tasks`` plus ``default_task``, each routed by the preset of its name.

    A name that is not a preset is allowed for the default task only (it then needs no rules: it is where
    everything else goes).
    """
    names = list(dict.fromkeys([*tasks, default_task]))
    unknown = [n for n in names if n != default_task and presets.get(n) is None]
    if unknown:
        raise errors.UsageError(
            f"unknown preset(s) {', '.join(unknown)}; built-in presets are: {', '.join(presets.PRESETS)}"
        )
    classifier = {} if threshold is None else {"threshold": threshold}
    try:
        return routerconfig.RouterConfig.model_validate(
            {"defaultTask": default_task, "tasks": [{"name": n} for n in names], "classifier": classifier}
        )
    except pydantic.ValidationError as exc:
        raise errors.UsageError(str(exc)) from exc
