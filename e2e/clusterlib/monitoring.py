"""The opt-in Prometheus of `e2e/cluster up --with prometheus`, and how `down` finds it.

The Prometheus built by `e2e/cluster build --only prometheus` runs as one more recorded process of the
cluster (so `down` stops it and `status` lists it), scraping what the chart's own monitors select: its
ServiceMonitors (routers, operator metrics Service) and PodMonitor (model pods), rendered by the pinned
helm as a release `flotilla` in `flotilla-system` (the demo's) watching every namespace, and translated
by `scraping`; it loads the chart's alert rules. Discovery is Kubernetes service discovery against the
cluster's apiserver with the admin kubeconfig. Targets are real pods: those on the real node are scraped,
kwok pods (which run no process) are listed as down.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clusterlib import kubeapi, scraping, settings, states

NAME = "prometheus"
CHART = settings.E2E_DIR.parent / "charts" / "flotilla"
RULES = CHART / "rules" / "flotilla.rules.yaml"
RELEASE, NAMESPACE = "flotilla", "flotilla-system"
EVALUATION_INTERVAL = "15s"
MONITOR_VALUES = ("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true")
TOOLS = ("prometheus", "helm", "kubectl")
BUILD_TARGETS = ["prometheus", "helm", "kubernetes"]  # `e2e/cluster build --only` names of TOOLS
Probe = Callable[[], tuple[bool, str]]


def present(state: states.State) -> bool:
    return any(p.name == NAME for p in state.procs)


def url(state: states.State) -> str | None:
    port = state.ports.get(NAME)
    return f"http://127.0.0.1:{port}" if port else None


def _run(cmd: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise settings.ClusterError(f"{Path(cmd[0]).name} did not finish in 120 s") from exc
    if done.returncode != 0:
        raise settings.ClusterError(f"{Path(cmd[0]).name} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def chart_monitors(cfg: settings.Settings) -> list[dict[str, Any]]:
    """The chart's ServiceMonitors and PodMonitor as `helm template` renders them, parsed.

    helm prints YAML and this package is stdlib only, so the pinned kubectl turns it into JSON offline
    (`annotate --local` reads any kind without asking an apiserver; the annotation is never applied).
    """
    helm = [str(cfg.binary("helm")), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    sets = [flag for value in MONITOR_VALUES for flag in ("--set", value)]
    only = ["--show-only", "templates/servicemonitor.yaml", "--show-only", "templates/podmonitor.yaml"]
    rendered = _run([*helm, *sets, *only])
    to_json = [str(cfg.binary("kubectl")), "annotate", "--local", "-f", "-", "-o", "json"]
    return _objects(_run([*to_json, "flotilla.dev/rendered-for=e2e-cluster"], stdin=rendered))


def _objects(text: str) -> list[dict[str, Any]]:
    """The objects in kubectl's JSON output: one document per object (or one List)."""
    decoder, at = json.JSONDecoder(), 0
    found: list[dict[str, Any]] = []
    try:
        while at < len(text):
            if text[at].isspace():
                at += 1
                continue
            obj, at = decoder.raw_decode(text, at)
            found += obj["items"] if obj.get("kind") == "List" else [obj]
    except (ValueError, AttributeError, KeyError) as exc:
        raise settings.ClusterError(f"cannot read kubectl's JSON of the chart's monitors: {exc}") from exc
    return found


def write_config(cfg: settings.Settings) -> Path:
    """prometheus.yml in the state dir: one scrape config per chart monitor, the chart's rules."""
    monitors = chart_monitors(cfg)
    scrape = [scraping.scrape_config(m, cfg.kubeconfig) for m in monitors]
    path = cfg.state_dir / NAME / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = scraping.config(scrape, [RULES], EVALUATION_INTERVAL)
    path.write_text(json.dumps(config, indent=1) + "\n")
    return path


def start(
    cfg: settings.Settings,
    state: states.State,
    port: int,
    spawn: Callable[[str, list[str]], None],
    wait: Callable[[str, Probe], None],
) -> None:
    """Start Prometheus on 127.0.0.1:`port` with the starter's `spawn`/`wait` (which name a failure)."""
    config = write_config(cfg)
    state.ports[NAME] = port
    spawn(
        NAME,
        [
            str(cfg.binary(NAME)),
            f"--config.file={config}",
            f"--storage.tsdb.path={cfg.state_dir / NAME / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
    )
    wait(NAME, kubeapi.http_ok(f"http://127.0.0.1:{port}/-/ready"))
