"""The official client's transport as the operator loads it (``tango_operator.kubeclient``).

In a fresh process the watcher's and the workers' adapters load the client without its
generated API and model modules, and still talk to the API server: kubeconfig loading,
JSON requests, the client's exceptions. In a process that imported the whole package
first, the same names come from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

from kubeemu.testing import KubeEmu
from tango_operator import kubeclient
from tests.support.workers import REPO

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

FRESH_PROCESS = """
import json, sys
from watcher.kube import Kube as WatcherKube
from workers.kube import Kube as WorkerKube
from tango_operator import kubeclient

kubeconfig = sys.argv[1]
watcher = WatcherKube.connect(kubeconfig)
namespaces = watcher.get("/api/v1/namespaces", timeout=(5, 10))
worker = WorkerKube.connect(kubeconfig)
missing = worker.get("v1", "ConfigMap", "default", "no-such-config-map")
try:
    watcher.get("/api/v1/namespaces/default/configmaps/no-such-config-map", timeout=(5, 10))
    status = None
except Exception as exc:
    status = getattr(exc, "status", None)
print(json.dumps({
    "namespaces": [n["metadata"]["name"] for n in namespaces["items"]],
    "missing": missing,
    "status": status,
    "modules": sorted(m for m in sys.modules if m.startswith("kubernetes")),
}))
"""


def test_a_fresh_process_talks_to_the_api_without_the_generated_modules(
    kubeemu: KubeEmu,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(kubeemu.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert "default" in answer["namespaces"]
    assert answer["missing"] is None, "a 404 read is None"
    assert answer["status"] == 404, "the client's ApiException became the adapter's error"
    modules = answer["modules"]
    assert "kubernetes.client.api_client" in modules
    assert not [
        m for m in modules if m.startswith(("kubernetes.client.api.", "kubernetes.client.models."))
    ]
    assert len(modules) < 40, modules


def test_a_process_with_the_whole_client_keeps_it() -> None:
    assert kubeclient.ApiClient is kubernetes.client.ApiClient
    assert kubeclient.Configuration is kubernetes.client.Configuration
    assert kubeclient.ApiException is kubernetes.client.rest.ApiException
    assert Path(kubernetes.__file__).name == "__init__.py"
