"""`flotilla objects cp` (what the init containers that fetch s3:// weights and adapters run, and the training
Job's publish step) against a real S3 store: SeaweedFS built from source (tests/router/storekit.py), with
signed requests. Run as the pods run it: the `flotilla` command in a subprocess, credentials in env."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # storekit and its process kit

from storekit import ACCESS_KEY, BUCKET, SECRET_KEY, Store

from flotilla import errors
from flotilla.objects import copying

MULTIPART = 20 * 1024 * 1024  # above s3transfer's 8 MiB threshold: the upload and download go in parts


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("seaweedfs")
    (root / "logs").mkdir()
    running = Store(root, root / "logs")
    running.start()
    yield running
    running.stop()


def cp(store: Store, *args: str, secret: str = SECRET_KEY) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=secret)
    argv = [sys.executable, "-m", "flotilla.cli", "objects", "cp", *args, "--endpoint-url", store.url]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_large_file_goes_up_and_comes_back_whole(store: Store, tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(os.urandom(MULTIPART))
    up = cp(store, str(weights), f"s3://{BUCKET}/models/")  # a prefix: the file's name is appended
    assert up.returncode == 0, up.stderr
    into_dir = tmp_path / "volume"
    into_dir.mkdir()
    down = cp(store, f"s3://{BUCKET}/models/model.gguf", str(into_dir))
    assert down.returncode == 0, down.stderr
    assert digest(into_dir / "model.gguf") == digest(weights)
    assert sorted(p.name for p in into_dir.iterdir()) == ["model.gguf"]  # no .partial left behind
    named = tmp_path / "renamed.gguf"
    assert cp(store, f"s3://{BUCKET}/models/model.gguf", str(named)).returncode == 0
    assert digest(named) == digest(weights)


def test_a_directory_round_trips_with_its_layout(store: Store, tmp_path: Path) -> None:
    adapter = tmp_path / "out"
    (adapter / "nested").mkdir(parents=True)
    files = {"adapter.gguf": os.urandom(4096), "manifest.json": b"{}", "nested/eval.jsonl": b"{}\n"}
    for name, data in files.items():
        (adapter / name).write_bytes(data)
    up = cp(store, str(adapter), f"s3://{BUCKET}/adapters/f/math/v1", "--recursive")
    assert up.returncode == 0, up.stderr
    assert "copied 3 file(s)" in up.stdout
    listed = store.client().list_objects_v2(Bucket=BUCKET, Prefix="adapters/f/")
    keys = {item["Key"] for item in listed.get("Contents", ())}
    assert keys == {f"adapters/f/math/v1/{name}" for name in files}
    back = tmp_path / "back"
    down = cp(store, f"s3://{BUCKET}/adapters/f/math/v1/", str(back), "--recursive")
    assert down.returncode == 0, down.stderr
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()} == files


def test_a_missing_object_fails_in_one_line_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    result = cp(store, f"s3://{BUCKET}/models/absent.gguf", str(tmp_path / "absent.gguf"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "404" in result.stderr and "absent.gguf" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_empty_prefix_is_a_failure_not_an_empty_volume(store: Store, tmp_path: Path) -> None:
    result = cp(store, f"s3://{BUCKET}/nothing-here/", str(tmp_path / "model"), "--recursive")
    assert result.returncode == 1
    assert f"no objects under s3://{BUCKET}/nothing-here/" in result.stderr


def test_wrong_credentials_are_named_not_a_traceback(store: Store, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    result = cp(store, str(tmp_path / "f"), f"s3://{BUCKET}/f", secret="not-the-secret")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "SignatureDoesNotMatch" in result.stderr or "AccessDenied" in result.stderr, result.stderr


def test_bad_arguments_exit_2() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "flotilla.cli", "objects", "cp", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    both_local = run("/tmp/a", "/tmp/b")
    assert both_local.returncode == 2 and "exactly one of SOURCE and TARGET" in both_local.stderr
    other_scheme = run("gs://bucket/key", "/tmp/b")
    assert other_scheme.returncode == 2 and "only s3:// URLs" in other_scheme.stderr
    prefix_without_recursive = run("s3://bucket/dir/", "/tmp/b")
    assert prefix_without_recursive.returncode == 2 and "--recursive" in prefix_without_recursive.stderr


@pytest.mark.parametrize("key", ["p/../../etc/passwd", "p/a/../../../x", "p/", "p/.."])
def test_keys_that_would_escape_the_target_are_refused(key: str) -> None:
    with pytest.raises(errors.FlotillaError, match="outside the target"):
        copying.relative_path(key, "p/")


def test_a_leading_slash_in_a_key_is_dropped_not_obeyed() -> None:
    assert copying.relative_path("p//etc/x", "p/").as_posix() == "etc/x"
