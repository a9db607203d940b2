"""`make demo`'s program from start to finish, as a user runs it, on each selected server.

Every sample Running, the endpoints printed (the kubeconfig the API server's), and nothing
left running afterwards — on the real control plane etcd and kube-apiserver included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.stack_api import ApiChoice
from tests.e2e.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def _descendants_alive(marker: str) -> list[str]:
    alive = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command:
            alive.append(command)
    return alive


def test_the_demo_brings_every_sample_to_running_and_cleans_up(
    stack_api: ApiChoice, tmp_path: Path
) -> None:
    require(stack_api)
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable, "-m", "devstack", "demo", "--api", stack_api,
            "--until-running", "--timeout", "300", "--workdir", str(workdir),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for name in ("sample-databaseds", "sample-source", "sample-relay", "sample-display"):
        assert name in output
    before_summary = output.split("The operator is running on this machine:")[0]
    last_table = before_summary.rsplit("NAMESPACE", 1)[1].strip().splitlines()[1:]
    assert {row.split()[1]: row.split()[2] for row in last_table} == {
        "DatabaseDS/sample-databaseds": "Running",
        "DeviceServer/sample-source": "Running",
        "DeviceServer/sample-relay": "Running",
        "DeviceServer/sample-display": "Running",
    }
    for endpoint in ("Flower", "Flower login", "worker0 metrics", "watcher metrics", "KUBECONFIG="):
        assert endpoint in output
    server, kubeconfig = {
        "kubeemu": ("Kubernetes API (kubeemu)", workdir / "kubeemu" / "kubeconfig"),
        "real": ("Kubernetes API (kube-apiserver)", workdir / "controlplane" / "kubeconfig"),
    }[stack_api]
    assert server in output
    assert f"export KUBECONFIG={kubeconfig}\n" in output
    assert _descendants_alive(str(workdir)) == [], "every process the demo started is gone"
