"""Writes the kubeconfig that points real clients (kubectl, helm, Python) at an emulator."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "kubeemu"


def kubeconfig_document(server_url: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server_url: str, namespace: str = "default") -> None:
    """Write atomically (a reader polling for the file never sees half of it), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(yaml.safe_dump(kubeconfig_document(server_url, namespace)))
    os.chmod(temporary, 0o600)
    temporary.replace(path)
