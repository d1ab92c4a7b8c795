"""Credentials of one cluster: the admin token, the service-account signing key pair, the kubeconfig.

The key pair comes from the `openssl` command: Python's standard library cannot generate keys, and this
package must run without the project's virtualenv. ECDSA P-256 is used because it is generated in
milliseconds (an RSA key costs up to a second on a busy 2-core machine) and Kubernetes signs ES256 tokens.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from clusterlib import nodeconfig, settings

ADMIN_USER = "flotilla-admin"
# Tokens of the opt-in real node's kubelet and kube-proxy, written at every `up` (the apiserver reads
# tokens.csv only when it starts, so `up --real-node` can then add the node to a running cluster).
NODE_TOKENS = {
    "node.token": (nodeconfig.NODE_USER, "system:nodes"),
    "proxy.token": (nodeconfig.PROXY_USER, ""),
}


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def make_pki(pki: Path) -> str:
    """Create tokens.csv and sa.key/sa.pub in `pki`; return the admin bearer token."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise settings.ClusterError("`openssl` is not on PATH (apt-get install openssl): needed for SA keys")
    pki.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    # Static token file: token,user,uid,"groups". system:masters bypasses RBAC, like kind's admin user.
    lines = [f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"']
    for file_name, (user, group) in NODE_TOKENS.items():
        node_token = secrets.token_hex(24)
        write_private(pki / file_name, node_token)
        lines.append(f'{node_token},{user},{user},"{group}"' if group else f"{node_token},{user},{user}")
    write_private(pki / "tokens.csv", "\n".join(lines) + "\n")
    steps = [
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "sa.key")],
        [openssl, "ec", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise settings.ClusterError(f"openssl failed: {done.stderr.strip()}")
    (pki / "sa.key").chmod(0o600)
    return token


def write_kubeconfig(path: Path, server: str, ca_cert: Path, token: str) -> None:
    """A self-contained kubeconfig (CA embedded). JSON is valid YAML, so stdlib suffices to write it."""
    ca_data = base64.b64encode(ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "flotilla", "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {
                "name": "flotilla",
                "context": {"cluster": "flotilla", "user": ADMIN_USER, "namespace": "default"},
            }
        ],
        "current-context": "flotilla",
        "preferences": {},
    }
    write_private(path, json.dumps(config, indent=2) + "\n")
