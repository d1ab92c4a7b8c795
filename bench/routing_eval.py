"""Routing accuracy of the built-in presets on the labelled dev prompts: per task, per source, confusions.

    .venv/bin/python -P bench/routing_eval.py [--data ../shared/data/routing-dev.jsonl]
        [--tasks code,math,writing] [--default chat] [--no-embeddings] [--errors N]

The dev labels are code / math / writing / general; ``general`` means "the fleet's default task", so a
prediction of the default task counts as ``general``. Nothing here is fitted to the dev prompts: the
classifier is built from the presets only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flotilla.router import classifying
from flotilla.router.classifying import evaluating

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing-dev.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tasks", default="code,math,writing")
    parser.add_argument("--default", default="chat")
    parser.add_argument("--no-embeddings", action="store_true", help="rules only")
    parser.add_argument("--errors", type=int, default=0, help="print up to N misclassified prompts")
    args = parser.parse_args()
    config = classifying.preset_config(args.tasks.split(","), args.default)
    classifier = classifying.build_classifier(config, use_embeddings=not args.no_embeddings)
    results = evaluating.evaluate(evaluating.load_rows(args.data), classifier)
    print(f"data: {args.data}")
    print(f"tasks: {args.tasks} (default {args.default}), embeddings: {classifier.uses_embeddings}")
    print(evaluating.report(results))
    shown = 0
    for row, predicted, result in results:
        if shown >= args.errors:
            break
        if row["task"] != predicted:
            shown += 1
            prompt = row["prompt"][:160].replace("\n", " ")
            print(
                f"- {row['task']}->{predicted} ({result.score:.2f} {result.reason}) "
                f"[{row.get('source')}] {prompt}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
