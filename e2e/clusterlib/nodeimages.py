"""The real node's local images, built without Docker or a registry: the sandbox (pause) image and an echo
HTTP server for tests.

Each program under e2e/nodeimages/ is compiled as a static Go binary and wrapped in a one-layer image in
the `docker save` archive format (manifest.json, config JSON, layer tar), which `ctr images import`
reads. Hand-written with tarfile/json because no image tool is needed for one static file per image. The
archives are cached under $FLOTILLA_CACHE/node-images-<hash of the sources>/, so a source change rebuilds.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from clusterlib import settings

SOURCE_DIR = settings.E2E_DIR / "nodeimages"
REGISTRY = "flotilla.local"  # a name no registry answers for: pods must use imagePullPolicy IfNotPresent


@dataclass(frozen=True)
class NodeImage:
    """One image: the Go program (folder under e2e/nodeimages/) and the user it runs as."""

    program: str
    user: str

    @property
    def ref(self) -> str:
        """Tagged with the sources' digest, so a changed program is imported anew (the store persists)."""
        return f"{REGISTRY}/{self.program}:{_sources_digest()}"


PAUSE = NodeImage("pause", "65535:65535")  # as the upstream pause image
ECHO = NodeImage("echo", "65534:65534")  # nobody; listens on 8080
IMAGES = (PAUSE, ECHO)


@functools.cache
def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod"):
            digest.update(path.relative_to(SOURCE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir(cfg: settings.Settings) -> Path:
    return cfg.cache_dir / f"node-images-{_sources_digest()}"


def archive_path(cfg: settings.Settings, image: NodeImage) -> Path:
    return cache_dir(cfg) / f"{image.program}.tar"


def _tar_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    """A reproducible tar (mtime 0, root owner) of (name, content, mode) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def image_archive(image: NodeImage, binary: bytes) -> bytes:
    """A `docker save` archive holding one layer with the binary at /<program>."""
    layer = _tar_bytes([(image.program, binary, 0o755)])
    layer_id = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [f"/{image.program}"], "User": image.user, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created_by": f"e2e/clusterlib/nodeimages.py: e2e/nodeimages/{image.program}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [image.ref], "Layers": [f"{layer_id}/layer.tar"]}]
    return _tar_bytes(
        [
            (config_name, config_bytes, 0o644),
            (f"{layer_id}/layer.tar", layer, 0o644),
            ("manifest.json", json.dumps(manifest).encode(), 0o644),
        ]
    )


def build(cfg: settings.Settings) -> list[Path]:
    """Build every image archive missing from the cache; return all archive paths."""
    go = shutil.which("go")
    out_dir = cache_dir(cfg)
    paths = []
    for image in IMAGES:
        target = archive_path(cfg, image)
        paths.append(target)
        if target.exists():
            continue
        if go is None:
            raise settings.ClusterError("`go` is not on PATH: needed to build the real node's images")
        out_dir.mkdir(parents=True, exist_ok=True)
        binary = out_dir / image.program
        done = subprocess.run(
            [
                go,
                "build",
                "-trimpath",
                "-buildvcs=false",
                "-ldflags=-s -w",
                "-o",
                str(binary),
                f"./{image.program}",
            ],
            cwd=SOURCE_DIR,
            env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise settings.ClusterError(f"go build of image program {image.program} failed:\n{done.stderr}")
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(image_archive(image, binary.read_bytes()))
        os.replace(tmp, target)
        print(f"built image {image.ref} -> {target}", flush=True)
    return paths
