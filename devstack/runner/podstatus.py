"""A pod's ``status`` as a kubelet writes it, from what the local kubelet saw of its process.

Input: the pod (as the API returns it) and the ``Observation`` of its first container's
process (``devstack.runner.process``); output: the ``status`` the local kubelet
(``devstack.runner.kubelet``) sends to the pod's status subresource. Conditions keep their
``lastTransitionTime`` while their value holds; the container's ``lastState.terminated``
comes from the last run that ended (exit code as a container runtime reports it, 128+N for
signal N; reason ``Error`` or ``Completed``); with ``restartPolicy: Always`` a container
waiting to be started again (CrashLoopBackOff) leaves the pod Running, as a kubelet's
``getPhase`` does. Host and pod IP are 127.0.0.1: every process listens on loopback.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from devstack.runner import plan
from devstack.runner.process import Observation, Run

JsonDict = dict[str, Any]


def now_text() -> str:
    """The time now as the API writes it (seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(code: int) -> int:
    """A process's exit status as a container runtime reports it: 128+N for signal N."""
    return 128 - code if code < 0 else code


def terminated(run: Run, now: str, *, logs_on_error: bool = False) -> JsonDict:
    """``state.terminated`` of a container instance that ended (its ``lastState``).

    A run that never started is a runtime's ``StartError`` (exit code 128, the runtime's
    message); ``logs_on_error`` (``terminationMessagePolicy: FallbackToLogsOnError``) makes
    the tail of a failed run's output its message.
    """
    finished = _time(run.finished_at) if run.finished_at is not None else now
    if run.start_error is not None:
        return {
            "exitCode": 128,
            "reason": "StartError",
            "message": run.start_error,
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": finished,
        }
    code = exit_code(run.exit_code if run.exit_code is not None else 0)
    entry: JsonDict = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": _time(run.started_at),
        "finishedAt": finished,
    }
    if logs_on_error and code != 0 and run.output_tail:
        entry["message"] = run.output_tail
    return entry


def pod_status(pod: JsonDict, observation: Observation, now: str) -> JsonDict:
    """The status a kubelet would write for ``observation`` of the pod's first container."""
    ready = observation.state == "ready"
    running = observation.state in ("ready", "running")
    old = pod.get("status") or {}
    previous = {c.get("type"): c for c in old.get("conditions") or []}

    def condition(kind: str, value: bool) -> JsonDict:
        flag = "True" if value else "False"
        before = previous.get(kind) or {}
        entry: JsonDict = {
            "type": kind,
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": before.get("lastTransitionTime", now)
            if before.get("status") == flag
            else now,
        }
        if not value and kind in ("Ready", "ContainersReady"):
            entry["reason"] = "ContainersNotReady"
        return entry

    container = pod["spec"]["containers"][0]
    state: JsonDict
    if running:
        state = {"running": {"startedAt": _time(observation.started_at or time.time())}}
    elif observation.state == "backoff":
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": observation.message}}
    elif observation.state == "config-error":
        reason = "CreateContainerConfigError"
        state = {"waiting": {"reason": reason, "message": observation.message}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    container_status: JsonDict = {
        "name": container["name"],
        "ready": ready,
        "started": running,
        "restartCount": observation.restarts,
        "image": container.get("image", ""),
        "imageID": "",
        "state": state,
    }
    last = observation.last_run
    if last is not None:
        logs_on_error = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        container_status["lastState"] = {
            "terminated": terminated(last, now, logs_on_error=logs_on_error)
        }
    elif observation.exit_code is not None:
        container_status["lastState"] = {
            "terminated": {
                "exitCode": exit_code(observation.exit_code),
                "reason": "Error",
                "finishedAt": now,
            }
        }
    else:
        container_status["lastState"] = {}
    # restartPolicy Always: a container waiting to be started again keeps the pod Running
    restarting = "terminated" in container_status["lastState"]
    return {
        "phase": "Running" if running or restarting else "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", running),
            condition("Initialized", True),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", True),
        ],
        "containerStatuses": [container_status],
        "hostIP": plan.LOCAL_ADDRESS,
        "hostIPs": [{"ip": plan.LOCAL_ADDRESS}],
        "podIP": plan.LOCAL_ADDRESS,
        "podIPs": [{"ip": plan.LOCAL_ADDRESS}],
        "startTime": old.get("startTime") or now,
    }
