"""`flotilla render FILE`: every object a ModelFleet file produces, as multi-document YAML, no cluster.

For GitOps review: commit the fleet, diff what it will create. Other documents in the file (a Secret, a
Namespace) are skipped; a file without a ModelFleet, unreadable YAML or an invalid spec is a one-line error.
A fleet whose models opt in to packing gets its packing plan first, as YAML comments (the output stays
valid YAML for `kubectl apply`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from flotilla import errors
from flotilla.api import fleet as fleet_api
from flotilla.packing import plans
from flotilla.render import documents, settings, trained
from flotilla.render.fleet import render_fleet


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="YAML file (or directory of them) with ModelFleet documents ('-': stdin)"
    )
    parser.add_argument(
        "--namespace", "-n", default=None, help="namespace for fleets that set none (default: 'default')"
    )


def read_fleets(path: str, namespace: str | None = None) -> list[fleet_api.ModelFleet]:
    """The ModelFleets in a YAML file; UsageError for unreadable files, InvalidSpecError for bad specs."""
    try:
        if path == "-":
            texts = [sys.stdin.read()]
        elif Path(path).is_dir():
            files = sorted(p for p in Path(path).iterdir() if p.suffix in (".yaml", ".yml"))
            texts = [p.read_text(encoding="utf-8") for p in files]
        else:
            texts = [Path(path).read_text(encoding="utf-8")]
        docs = [d for text in texts for d in yaml.safe_load_all(text) if d is not None]
    except OSError as exc:
        raise errors.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise errors.UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    fleets = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise errors.UsageError(
                f"{path}: every YAML document must be a mapping, got {type(doc).__name__}"
            )
        if doc.get("kind") != fleet_api.KIND:
            continue
        body: dict[str, Any] = dict(doc)
        meta = dict(body.get("metadata") or {})
        if namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        body["metadata"] = meta
        fleets.append(trained.served(fleet_api.ModelFleet.from_body(body)))
    if not fleets:
        raise errors.UsageError(f"{path} holds no {fleet_api.KIND} ({fleet_api.API_VERSION})")
    return fleets


def plan_comment(fleet: fleet_api.ModelFleet) -> str:
    """The fleet's packing plan as YAML comment lines ("" when no model opts in)."""
    plan = plans.plan(fleet.spec)
    if not plan.wanted:
        return ""
    lines = [f"packing plan of {fleet.namespace}/{fleet.name} ({plans.SERVED}):"]
    lines += [f"  {line}" for line in plan.describe()]
    return "".join(f"# {line}\n" for line in lines)


def run(name: str, args: argparse.Namespace) -> int:
    fleets = read_fleets(args.file, args.namespace)
    render_settings = settings.load()
    objects = [obj for fleet in fleets for obj in render_fleet(fleet, render_settings)]
    sys.stdout.write("".join(plan_comment(fleet) for fleet in fleets))
    sys.stdout.write(documents.dump_all(objects))
    return 0
