"""The official Kubernetes client's transport, without its generated API and model modules.

The watcher (``watcher.kube``) and the workers (``workers.kube``) speak plain JSON through
``ApiClient.call_api`` and never use the client's generated API classes or models. Importing
the ``kubernetes`` package loads all of them — over two thousand modules, 58 MiB resident in
every process, more than all the rest of the watcher (docs/benchmarks.md) — because its
``__init__`` modules import everything. This module loads only what those two adapters use:
the configuration, the REST transport, ``ApiClient``, the exceptions and the configuration
loaders (kubeconfig with its exec and auth-provider plugins, in-cluster service account),
all unchanged, by registering the ``kubernetes`` and ``kubernetes.client`` packages without
running their ``__init__``. The models package is registered empty: ``ApiClient`` reads it
only to deserialise into models, which ``_preload_content=False`` never asks for.

A process that has already imported the ``kubernetes`` package (the tests, a tool next to
the operator) keeps it and gets the same names from it. Written for the classic generated
client (``kubernetes`` < 37, as pinned in pyproject.toml); the tests run every adapter
through it against kubeemu and a real kube-apiserver.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def _package(name: str, directory: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [directory]
    module.__package__ = name
    sys.modules[name] = module
    return module


def _load_light() -> None:
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or spec.origin is None:
        raise ImportError("the kubernetes client is not installed")
    root = os.path.dirname(spec.origin)
    top = _package("kubernetes", root)
    client = _package("kubernetes.client", os.path.join(root, "client"))
    _package("kubernetes.client.models", os.path.join(root, "client", "models"))
    configuration = importlib.import_module("kubernetes.client.configuration")
    exceptions = importlib.import_module("kubernetes.client.exceptions")
    rest = importlib.import_module("kubernetes.client.rest")
    api_client = importlib.import_module("kubernetes.client.api_client")
    client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
    client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
    client.rest = rest  # type: ignore[attr-defined]
    client.exceptions = exceptions  # type: ignore[attr-defined]
    top.client = client  # type: ignore[attr-defined]
    top.config = importlib.import_module("kubernetes.config")  # type: ignore[attr-defined]


def _kubernetes() -> Any:
    with _lock:
        if "kubernetes" not in sys.modules:
            _load_light()
    return sys.modules["kubernetes"]


_k8s = _kubernetes()

Configuration: Any = _k8s.client.Configuration
ApiClient: Any = _k8s.client.ApiClient
ApiException: Any = _k8s.client.rest.ApiException
ConfigException: Any = _k8s.config.ConfigException
load_kube_config: Any = _k8s.config.load_kube_config
load_incluster_config: Any = _k8s.config.load_incluster_config

__all__ = [
    "ApiClient",
    "ApiException",
    "ConfigException",
    "Configuration",
    "load_incluster_config",
    "load_kube_config",
]
