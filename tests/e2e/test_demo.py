"""`make demo`'s program from start to finish, as a user runs it, on each selected server.

Every sample Running, the endpoints printed (the kubeconfig the API server's), and nothing
left running afterwards — on the real control plane etcd and kube-apiserver included.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import tango

from devstack.demo import WORKDIR_MARKER, WorkdirError, prepare_workdir
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


@pytest.mark.slow
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
    for row in last_table:
        if row.split()[1].startswith("DeviceServer/"):
            assert row.split()[3:5] == ["1/1", "ON"], "its device's TANGO State, counted"
    for endpoint in ("Flower", "Flower login", "worker0 metrics", "watcher metrics", "KUBECONFIG="):
        assert endpoint in output
    server, kubeconfig = {
        "kubeemu": ("Kubernetes API (kubeemu)", workdir / "kubeemu" / "kubeconfig"),
        "real": ("Kubernetes API (kube-apiserver)", workdir / "controlplane" / "kubeconfig"),
    }[stack_api]
    assert server in output
    assert f"export KUBECONFIG={kubeconfig}\n" in output
    assert re.search(
        r"export TANGO_HOST=127\.0\.0\.1:\d+   # DatabaseDS default/sample-databaseds", output
    ), output
    logs = workdir / "kubelet" / "logs"
    printed = re.search(rf"{re.escape(str(logs))}/default_sample-\w+-0\.log", output)
    assert printed, output
    assert Path(printed.group(0)).stat().st_size > 0, "the server's output is where it says"
    assert _descendants_alive(str(workdir)) == [], "every process the demo started is gone"


CRASHING_SAMPLE = """\
apiVersion: tango.tango-controls.org/v1
kind: DeviceServer
metadata:
  name: sample-crashes
spec:
  dsname: Crashes
  args: "1"
  image: registry.example/crashes:1
  databaseds: sample-databaseds
  script: raise RuntimeError("calibration file missing")
"""


def _registered(database: tango.Database) -> bool:
    try:
        return list(database.get_server_list("Source/*")) == ["Source/1"]
    except tango.DevFailed:
        return False


@dataclass
class _Demo:
    """``python -m devstack demo`` running, its output collected as it comes."""

    process: subprocess.Popen[str]
    output: list[str]
    reader: threading.Thread

    @classmethod
    def start(cls, *arguments: str) -> _Demo:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "demo", *arguments],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
        reader.start()
        return cls(process, output, reader)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self, signum: signal.Signals) -> None:
        """Send ``signum`` and wait for the demo to exit (killed if it does not, or on failure)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signum)
                self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.reader.join(timeout=10)


@pytest.mark.slow
def test_a_crashing_sample_does_not_hide_the_tango_host_and_sighup_stops_all(
    tmp_path: Path,
) -> None:
    """The TANGO_HOST is printed once the TANGO DB runs, though one server never will.

    It answers; SIGHUP (the terminal closing) then cleans up like Ctrl-C.
    """
    samples = tmp_path / "samples"
    shutil.copytree(ROOT / "helm" / "samples", samples)
    (samples / "deviceserver-crashes.yaml").write_text(CRASHING_SAMPLE)
    workdir = tmp_path / "demo"
    demo = _Demo.start(str(samples), "--no-flower", "--workdir", str(workdir))
    try:
        deadline = time.monotonic() + 300
        found = None
        while found is None and time.monotonic() < deadline and demo.process.poll() is None:
            time.sleep(0.5)
            found = re.search(r"export TANGO_HOST=([\d.]+):(\d+)", demo.text)
        assert found, demo.text
        database = tango.Database(found.group(1), int(found.group(2)))
        while not _registered(database):
            assert time.monotonic() < deadline, demo.text
            time.sleep(0.5)
    finally:
        demo.stop(signal.SIGHUP)
    text = demo.text
    assert demo.process.returncode == 0, text
    assert "stopping" in text
    assert "The operator is running on this machine:" not in text, "not everything ran"
    assert _descendants_alive(str(workdir)) == [], "every process the demo started is gone"


@pytest.mark.slow
def test_kubectl_logs_of_a_demo_pod_prints_the_server_output(
    stack_api: ApiChoice, tmp_path: Path
) -> None:
    """The ``kubectl logs`` the demo suggests prints the device server's output, on both servers.

    The API server forwards it to the kubelet of the pod's Node: the demo registers this
    machine as the Node on kubeemu too, and kubeemu proxies ``pods/log`` as kube-apiserver does.
    """
    require(stack_api)
    workdir = tmp_path / "demo"
    demo = _Demo.start("--api", stack_api, "--no-flower", "--workdir", str(workdir))
    try:
        deadline = time.monotonic() + 300
        while "stops everything" not in demo.text:
            assert demo.process.poll() is None, demo.text
            assert time.monotonic() < deadline, demo.text
            time.sleep(0.5)
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", demo.text)
        command = re.search(r"^  (\S+) logs (sample-source-0)$", demo.text, re.MULTILINE)
        assert kubeconfig, demo.text
        assert command, demo.text
        logs = subprocess.run(
            [command.group(1), "logs", command.group(2)],
            env={**os.environ, "KUBECONFIG": kubeconfig.group(1)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert logs.returncode == 0, logs.stderr
        assert "Ready to accept request" in logs.stdout, logs.stdout
        written = (workdir / "kubelet" / "logs" / "default_sample-source-0.log").read_text()
        assert logs.stdout in written, "the current run's output, as the kubelet wrote it"
    finally:
        demo.stop(signal.SIGINT)
    assert demo.process.returncode == 0, demo.text
    assert _descendants_alive(str(workdir)) == [], "every process the demo started is gone"


def test_a_workdir_the_demo_did_not_make_is_never_deleted(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(WorkdirError, match="was not made by the demo"):
        prepare_workdir(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(WorkdirError, match="is a file"):
        prepare_workdir(precious / "thesis.tex")

    fresh = tmp_path / "fresh"
    prepare_workdir(fresh)
    (fresh / "left-over.log").write_text("from the last demo")
    prepare_workdir(fresh)  # an earlier demo's: emptied
    assert [p.name for p in fresh.iterdir()] == [WORKDIR_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_workdir(empty)
    assert (empty / WORKDIR_MARKER).exists()
