"""`flotilla crds`: print the CustomResourceDefinitions (generated from the pydantic models) as YAML."""

from __future__ import annotations

import argparse
import sys

import yaml

from flotilla.api import crd


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """No options: the output is what `kubectl apply -f -` needs."""


def dump_crds() -> str:
    """The CRDs as the multi-document YAML committed in crds/."""
    return yaml.safe_dump_all(crd.render_crds(), sort_keys=False, explicit_start=True, width=120)


def run(name: str, args: argparse.Namespace) -> int:
    sys.stdout.write(dump_crds())
    return 0
