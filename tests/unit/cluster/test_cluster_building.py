"""Two processes building the same cluster target take turns instead of deleting each other's output.

Runs a real (tiny) `go build`: both builders share the target's folder, as `make test` and a test that
needs the cluster do when they start at the same time.
"""

from __future__ import annotations

import threading
from pathlib import Path

from clusterlib import building


def _target(root: Path) -> building.Target:
    module = root / "module"
    (module / "hello").mkdir(parents=True)
    (module / "go.mod").write_text("module example.test/hello\n\ngo 1.21\n")
    (module / "hello" / "main.go").write_text('package main\n\nfunc main() { println("hello") }\n')
    return building.Target("hello", module, {"hello": "example.test/hello/hello"}, "-s -w", root / "bin")


def test_concurrent_builds_of_one_target_both_succeed(tmp_path: Path) -> None:
    target = _target(tmp_path)
    results: list[bool] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(building.build_target(target))
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    builders = [threading.Thread(target=build) for _ in range(2)]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(timeout=300)
    assert not errors, errors
    assert sorted(results) == [False, True]  # one built it, the other found it built
    assert (target.bin_dir / "hello").is_file()
    assert building.build_target(target) is False
