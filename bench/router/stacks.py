"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile: where the router spends its time.

    py-spy record -p PID -d 15 -r 200 -f raw -o prof.txt
    python bench/router/stacks.py prof.txt [--top 25] [--match flotilla]

Prints the functions with the most samples on-CPU by themselves ("self") and anywhere on the stack
("inclusive"), as percentages of all samples. ``--match`` limits the inclusive list to frames whose file
contains the string (e.g. ``flotilla`` for the router's own code).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/operator/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{match['func']}"


def package(name: str) -> str:
    """``flotilla/router/handling.py:complete`` -> ``flotilla/router/handling.py``; ``json/decoder.py:x``
    -> ``json``; the event loop's own C time shows under ``asyncio/runners.py`` (uvloop has no Python
    frames)."""
    file = name.split(":", 1)[0]
    if file.startswith("flotilla/"):
        return file
    if file == "asyncio/runners.py":
        return "event loop (uvloop, C)"
    return file.split("/", 1)[0].split(".", 1)[0]


def summarise(text: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--match", default="", help="only frames whose file contains this, in the inclusive list"
    )
    args = parser.parse_args()
    total, own, inclusive = summarise(args.profile.read_text())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples\n\nself %  function")
    for name, count in own.most_common(args.top):
        print(f"{count * 100 / total:6.1f}  {name}")
    by_package: collections.Counter[str] = collections.Counter()
    for name, count in own.items():
        by_package[package(name)] += count
    print("\nself %  package (flotilla: per module)")
    for name, count in by_package.most_common(args.top):
        print(f"{count * 100 / total:6.1f}  {name}")
    print("\nincl %  function")
    shown = [(n, c) for n, c in inclusive.most_common() if args.match in n][: args.top]
    for name, count in shown:
        print(f"{count * 100 / total:6.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
