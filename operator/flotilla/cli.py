"""The `flotilla` command: one subcommand per component, each defined in that component's `commands` module.

Subcommand modules are imported only when their command runs, so `flotilla crds` does not load the router's
embedding model and `flotilla router` does not import kopf.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from flotilla import __version__, errors


class CommandModule(Protocol):
    """What a `commands` module provides for each subcommand it owns."""

    def add_arguments(self, name: str, parser: argparse.ArgumentParser) -> None: ...
    def run(self, name: str, args: argparse.Namespace) -> int: ...


# subcommand -> (module that implements it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("flotilla.controller.commands", "run the operator (kopf handlers)"),
    "crds": ("flotilla.api.commands", "print the CustomResourceDefinitions as YAML"),
    "render": ("flotilla.render.commands", "print every object a ModelFleet file produces (no cluster)"),
    "router": ("flotilla.router.commands", "run the OpenAI-compatible fleet router"),
    "pack-serve": ("flotilla.packserve.commands", "serve a pack of GGUF models from one process (Ray Serve)"),
    "classify": ("flotilla.router.classifying.commands", "classify JSONL prompts from stdin into task types"),
    "classifier": (
        "flotilla.router.classifying.trainingcommands",
        "train a task classifier from labelled prompts",
    ),
    "traces": ("flotilla.capturing.commands", "export captured traces as fine-tuning datasets"),
    "distill": ("flotilla.distilling.commands", "fine-tune a small model on a teacher's answers"),
    "objects": ("flotilla.objects.commands", "copy files to and from an S3-compatible object store"),
}


def _load(name: str) -> CommandModule:
    module_name = SUBCOMMANDS[name][0]
    module: CommandModule = importlib.import_module(module_name)
    return module


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(prog="flotilla", description=description)
    parser.add_argument("--version", action="version", version=f"flotilla {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in SUBCOMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen command's module is imported
            _load(name).add_arguments(name, command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; maps Flotilla errors to a one-line message and exit code 2 (usage) or 1 (failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return _load(args.command).run(args.command, args)
    except errors.UsageError as exc:
        print(f"flotilla {args.command}: {exc}", file=sys.stderr)
        return 2
    except errors.FlotillaError as exc:
        print(f"flotilla {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
