"""The node side of the local kubelet, without an API server.

Pod status as a kubelet writes it (``devstack.runner.podstatus``), the Node status
(``devstack.runner.nodeagent``), the log endpoint's query and tail handling
(``devstack.runner.logserver``), and the per-run output ranges a ``LocalPod`` keeps, with a
real short-lived process.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.runner import logserver
from devstack.runner.nodeagent import node_status
from devstack.runner.plan import Launch
from devstack.runner.podstatus import exit_code, pod_status
from devstack.runner.process import LocalPod, Observation, RestartPolicy, Run

JsonDict = dict[str, Any]
NOW = "2026-12-05T10:00:00Z"
POD: JsonDict = {
    "metadata": {"name": "web-0", "namespace": "ns", "uid": "u1"},
    "spec": {"containers": [{"name": "main", "image": "python:3"}]},
    "status": {},
}


def test_a_signal_is_reported_as_a_runtime_does() -> None:
    assert (exit_code(-9), exit_code(-15), exit_code(3), exit_code(0)) == (137, 143, 3, 0)


def test_a_pod_not_started_yet_is_pending_without_last_state() -> None:
    status = pod_status(POD, Observation("pending"), NOW)
    assert status["phase"] == "Pending"
    (container,) = status["containerStatuses"]
    assert container["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert container["lastState"] == {}
    assert (status["hostIP"], status["podIP"], status["startTime"]) == ("127.0.0.1",) * 2 + (NOW,)


def test_a_container_waiting_to_restart_keeps_the_pod_running_with_its_last_state() -> None:
    last = Run(started_at=100.0, log_start=0, finished_at=101.5, log_end=10, exit_code=3)
    observation = Observation("backoff", restarts=2, message="exited", exit_code=3, last_run=last)
    status = pod_status(POD, observation, NOW)
    assert status["phase"] == "Running"
    (container,) = status["containerStatuses"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert (container["ready"], container["restartCount"]) == (False, 2)
    assert container["lastState"] == {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "1970-01-01T00:01:40Z",
            "finishedAt": "1970-01-01T00:01:41Z",
        }
    }
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "False"
    assert conditions["PodScheduled"] == "True"


def test_the_node_status_is_a_ready_kubelets() -> None:
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    status = node_status(
        address="127.0.0.1",
        hostname="localhost",
        port=10250,
        info={"kubeletVersion": "v1.32.13"},
        since={"Ready": "2026-12-05T09:00:00Z"},
        now=now,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert ready["lastTransitionTime"] == "2026-12-05T09:00:00Z"
    assert ready["lastHeartbeatTime"] == "2026-12-05T10:00:00Z"
    pressure = [c["status"] for c in status["conditions"] if c["type"].endswith("Pressure")]
    assert pressure == ["False"] * 3
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["allocatable"]["pods"] == "1000"


def test_log_queries_and_tails() -> None:
    query = logserver.LogQuery.parse("tailLines=2&previous=true&follow=false&limitBytes=10")
    assert query == logserver.LogQuery(previous=True, tail_lines=2, limit_bytes=10)
    assert logserver.tail(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert logserver.tail(b"a\nb\nc", 0) == b""
    assert logserver.tail(b"a\nb", None) == b"a\nb"
    with pytest.raises(logserver.LogUnavailableError) as bad:
        logserver.LogQuery.parse("tailLines=many")
    assert bad.value.status == 400


def test_each_run_knows_its_part_of_the_log(tmp_path: Path) -> None:
    launch = Launch(
        argv=[sys.executable, "-c", "print('out'); raise SystemExit(3)"],
        env={},
        cwd=tmp_path / "pod",
        ports={},
    )
    pod = LocalPod("ns/web-0", launch, tmp_path / "web-0.log", restart=RestartPolicy(base=0.05))
    ends: list[Observation] = []
    deadline = time.monotonic() + 30
    while len(ends) < 2 and time.monotonic() < deadline:
        observation = pod.step()
        if observation.state == "backoff" and observation.restarts > len(ends):
            ends.append(observation)
        time.sleep(0.02)
    assert [o.restarts for o in ends] == [1, 2]
    previous, last = pod.runs
    text = (tmp_path / "web-0.log").read_bytes()
    for run in (previous, last):
        assert run.exit_code == 3
        assert run.log_end is not None
        assert text[run.log_start : run.log_end] == b"out\n"
    assert pod.last_finished_run() is last
    assert ends[-1].last_run is last
    assert text.count(b"--- start") == 2, "the kubelet's markers stay outside the runs"


def _run_until_backoff(pod: LocalPod) -> Observation:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        observation = pod.step()
        if observation.state == "backoff" and observation.restarts:
            return observation
        time.sleep(0.02)
    raise AssertionError("the process never ended")


def test_a_failed_run_leaves_its_output_tail_as_termination_message(tmp_path: Path) -> None:
    script = "for i in range(200): print('line', i)\nraise SystemExit('bad calibration')"
    launch = Launch(argv=[sys.executable, "-u", "-c", script], env={}, cwd=tmp_path / "p", ports={})
    pod = LocalPod("ns/web-0", launch, tmp_path / "web-0.log", restart=RestartPolicy(base=5))
    observation = _run_until_backoff(pod)
    assert observation.message.startswith("back-off 5s restarting failed container")

    fallback: JsonDict = {
        **POD,
        "spec": {
            "containers": [
                {
                    **POD["spec"]["containers"][0],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ]
        },
    }
    terminated = pod_status(fallback, observation, NOW)["containerStatuses"][0]["lastState"][
        "terminated"
    ]
    assert (terminated["exitCode"], terminated["reason"]) == (1, "Error")
    message = terminated["message"]
    assert message.endswith("bad calibration")
    assert len(message.encode()) <= 2048
    assert len(message.splitlines()) <= 80
    assert "line 0\n" not in message, "only the tail is kept"
    # the default policy (File) reads a termination-log file, which no process here writes
    plain = pod_status(POD, observation, NOW)["containerStatuses"][0]["lastState"]["terminated"]
    assert "message" not in plain


def test_a_missing_executable_is_a_start_error(tmp_path: Path) -> None:
    launch = Launch(argv=["/opt/nowhere/server"], env={}, cwd=tmp_path / "p", ports={})
    pod = LocalPod("ns/web-0", launch, tmp_path / "web-0.log", restart=RestartPolicy(base=5))
    observation = _run_until_backoff(pod)
    container = pod_status(POD, observation, NOW)["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    terminated = container["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert (
        terminated["message"] == 'exec: "/opt/nowhere/server": executable file not found in $PATH'
    )
