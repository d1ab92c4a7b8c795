"""Routing accuracy of the shipped classifier: dev split, routing-dev, leave-one-source-out, language probes.

    .venv/bin/python -P bench/routing_eval.py [--sections dev,routing-dev,loso,probes] [--errors N]

Every section builds the router's classifier for a fleet with the preset tasks code, math and writing and
the default task chat (labels: code / math / writing / general, where ``general`` = the default task):

- ``dev``: the dev split of ../shared/data/routing-train.jsonl (754 rows, never trained on), per task,
  language, source, confusion matrix and expected calibration error;
- ``routing-dev``: ../shared/data/routing-dev.jsonl (598 rows, never trained on), next to the rules alone;
- ``loso``: leave one source out, the honest estimate of unseen traffic: for each source of
  routing-train, a head trained on the shipped rows without that source, evaluated on all of its rows
  (sources the shipped head never trains on, for their licence, are evaluated with the shipped head);
- ``probes``: tests/unit/data/routing-probes.jsonl, the same 40 requests in 8 languages each: how many
  route to the same task in every language, and accuracy per language.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

from flotilla.router import classifying
from flotilla.router.classifying import datasets, embedding, evaluating, training

REPOSITORY = Path(__file__).resolve().parents[1]
PROBES = REPOSITORY / "tests" / "unit" / "data" / "routing-probes.jsonl"
SECTIONS = ("dev", "routing-dev", "loso", "probes")


def _classifier(**kwargs: object) -> classifying.Classifier:
    config = classifying.preset_config(["code", "math", "writing"], "chat")
    return classifying.build_classifier(config, **kwargs)  # type: ignore[arg-type]


def _errors(results: list[evaluating.Result], limit: int) -> None:
    shown = 0
    for row, predicted, result in results:
        if shown >= limit:
            break
        if row["task"] != predicted:
            shown += 1
            prompt = row["prompt"][:140].replace("\n", " ")
            print(f"- {row['task']}->{predicted} ({result.score:.2f}) [{row.get('lang', '')}] {prompt}")


def dev_split(limit: int) -> None:
    rows = [r for r in datasets.routing_train() if r["split"] == "dev"]
    results = evaluating.evaluate(rows, _classifier())
    print(f"## routing-train dev split ({len(rows)} rows)\n")
    print(evaluating.report(results))
    _errors(results, limit)


def routing_dev(limit: int) -> None:
    rows = evaluating.load_rows(datasets.shared_data() / "routing-dev.jsonl")
    learned = evaluating.evaluate(rows, _classifier())
    rules = evaluating.evaluate(rows, _classifier(use_embeddings=False))
    print(f"\n## routing-dev.jsonl ({len(rows)} rows)\n")
    print(evaluating.report(learned))
    print(f"\nrules alone (fitted to this set by hand): {evaluating.accuracy(rules):.3f}")
    _errors(learned, limit)


def _row(row: dict[str, str]) -> training.Row:
    return training.Row(row["prompt"], row["task"], row.get("source", ""))


def leave_one_source_out(prefix: int | None) -> None:
    shipped = datasets.shipped_training_rows()
    everything = datasets.routing_train()
    embedder = embedding.load()
    options: dict[str, Any] = {"offsets": datasets.SHIPPED_OFFSETS}  # the shipped design
    if prefix is not None:
        options["prefix"] = prefix
    full = None
    if prefix is not None:  # a design other than the shipped one: its head on all shipped rows
        full = training.train([_row(r) for r in shipped], embedder, **options)
    print("\n## leave one source out (all rows of the source, train and dev)\n")
    print("| source | rows | trained without it | accuracy |")
    print("|---|---:|---|---:|")
    hits: list[bool] = []
    for source in sorted({r["source"] for r in everything}):
        held = [r for r in everything if r["source"] == source]
        if any(r["source"] == source for r in shipped):
            rows = [_row(r) for r in shipped if r.get("source") != source]
            head = training.train(rows, embedder, source=f"without {source}", **options)
            classifier = _classifier(head=head)
            how = "retrained"
        else:
            classifier = _classifier(head=full) if full else _classifier()
            how = "head on all shipped rows (never trained on it)"
        results = evaluating.evaluate(held, classifier)
        hits += [row["task"] == p for row, p, _ in results]
        print(f"| {source} | {len(held)} | {how} | {evaluating.accuracy(results):.3f} |")
    print(f"| **all** | {len(hits)} | | **{sum(hits) / len(hits):.3f}** |")


def probes() -> None:
    classifier = _classifier()
    probes = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]
    per_language: dict[str, list[bool]] = collections.defaultdict(list)
    consistent = 0
    print("\n## cross-language probes\n")
    for probe in probes:
        got = {}
        for lang, prompt in probe["prompts"].items():
            result = classifier.classify([{"role": "user", "content": prompt}])
            label = "general" if result.task == classifier.default_task else result.task
            got[lang] = label
            per_language[lang].append(label == probe["task"])
        if len(set(got.values())) == 1:
            consistent += 1
        else:
            print(f"- {probe['id']} ({probe['task']}): {got}")
    print(f"\nsame task in all {len(probes[0]['prompts'])} languages: {consistent}/{len(probes)}")
    print("| language | accuracy |\n|---|---:|")
    for lang, hits in per_language.items():
        print(f"| {lang} | {sum(hits) / len(hits):.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {SECTIONS}")
    parser.add_argument("--errors", type=int, default=0, help="print up to N misrouted prompts per set")
    parser.add_argument(
        "--prefix-tokens",
        type=int,
        help="loso only: train heads with this second-stage prefix (0: one stage)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    chosen = args.sections.split(",")
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}")
    head = classifying.build_classifier(classifying.preset_config(["code"], "chat")).version
    print(f"classifier: packaged head version {head}\n")
    if "dev" in chosen:
        dev_split(args.errors)
    if "routing-dev" in chosen:
        routing_dev(args.errors)
    if "loso" in chosen:
        leave_one_source_out(args.prefix_tokens)
    if "probes" in chosen:
        probes()
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
