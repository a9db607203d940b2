"""A server's container as the operator reports it, and pod events as the watcher maps them.

``tango_operator.pod_health`` (starting / running / failing, and why) and ``watcher.pods``
(a pod event → its owner's key, only when the container's trouble changes).
"""

from __future__ import annotations

from typing import Any

from tango_operator import pod_health
from tango_operator.keys import Key
from watcher.pods import PodTrouble

JsonDict = dict[str, Any]
OWNER = Key("DeviceServer", "ns", "motor")


def _pod(
    state: JsonDict, *, restarts: int = 0, last: JsonDict | None = None, name: str = "motor-0"
) -> JsonDict:
    container: JsonDict = {"name": "device-server", "restartCount": restarts, "state": state}
    if last is not None:
        container["lastState"] = {"terminated": last}
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": "motor",
                    "controller": True,
                }
            ],
        },
        "status": {"containerStatuses": [container]},
    }


CREATING = {"waiting": {"reason": "ContainerCreating"}}
RUNNING = {"running": {"startedAt": "2026-12-05T10:00:00Z"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting"}}
CRASHED = {"exitCode": 1, "reason": "Error", "message": "Traceback\nRuntimeError: no cal"}


def test_a_starting_or_running_container_is_not_failing() -> None:
    for state in (CREATING, RUNNING):
        report = pod_health.report(_pod(state))
        assert report is not None
        assert not report.failing
    assert pod_health.report(None) is None
    assert pod_health.report({"status": {}}) is None


def test_a_crash_loop_says_exit_code_restarts_and_last_output() -> None:
    report = pod_health.report(_pod(BACKOFF, restarts=3, last=CRASHED), "device-server")
    assert report is not None
    assert report.failing
    assert report.reason == "CrashLoopBackOff"
    assert report.describe() == (
        "exited with code 1 (Error); restarted 3 times; last output: RuntimeError: no cal"
    )
    assert report.as_status() == {
        "restartCount": 3,
        "reason": "CrashLoopBackOff",
        "waitingReason": "CrashLoopBackOff",
        "waitingMessage": "back-off 10s restarting",
        "lastExitCode": 1,
        "lastTerminationReason": "Error",
        "lastOutput": "Traceback\nRuntimeError: no cal",
    }


def test_a_missing_executable_cannot_start() -> None:
    start_error = {
        "exitCode": 128,
        "reason": "StartError",
        "message": 'exec: "/opt/x": executable file not found in $PATH',
    }
    report = pod_health.report(_pod(BACKOFF, restarts=1, last=start_error))
    assert report is not None
    assert report.reason == "CannotStart"
    assert report.describe().startswith(
        'cannot start: exec: "/opt/x": executable file not found in $PATH'
    )


def test_an_image_or_config_problem_fails_without_any_restart() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}
    report = pod_health.report(_pod(waiting))
    assert report is not None
    assert report.failing
    assert report.reason == "ImagePullBackOff"
    assert report.describe() == "ImagePullBackOff: pull access denied"


def test_the_output_kept_is_bounded() -> None:
    long = {"exitCode": 2, "reason": "Error", "message": "\n".join(f"l{i}" for i in range(500))}
    report = pod_health.report(_pod(BACKOFF, restarts=1, last=long))
    assert report is not None
    lines = report.last_output.splitlines()
    assert len(lines) == pod_health.MAX_OUTPUT_LINES
    assert lines[-1] == "l499"
    huge = {"exitCode": 2, "reason": "Error", "message": "x" * 10_000}
    bounded = pod_health.report(_pod(BACKOFF, restarts=1, last=huge))
    assert bounded is not None
    assert len(bounded.last_output) == pod_health.MAX_OUTPUT


def _statefulset(event: str = "ADDED") -> tuple[str, JsonDict]:
    return event, {"kind": "StatefulSet", "metadata": {"name": "motor", "namespace": "ns"}}


def test_a_healthy_start_wakes_nobody_a_crash_and_a_restart_wake_the_owner() -> None:
    pods = PodTrouble()
    pods.statefulset(*_statefulset(), OWNER)
    assert pods.pod("ADDED", _pod({})) == []
    assert pods.pod("MODIFIED", _pod(CREATING)) == []
    assert pods.pod("MODIFIED", _pod(RUNNING)) == []
    assert len(pods) == 0, "a healthy pod costs no memory"
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=1, last=CRASHED)) == [OWNER]
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=1, last=CRASHED)) == [], "no change"
    assert pods.pod("MODIFIED", _pod(RUNNING, restarts=1, last=CRASHED)) == [OWNER]
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=2, last=CRASHED)) == [OWNER]
    assert len(pods) == 1
    assert pods.pod("DELETED", _pod(BACKOFF, restarts=2)) == []
    assert len(pods) == 0


def test_a_pod_of_an_unknown_statefulset_maps_to_nothing() -> None:
    pods = PodTrouble()
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=1)) == []
    pods.statefulset(*_statefulset(), OWNER)
    pods.statefulset(*_statefulset("DELETED"), None)
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=2)) == []
    pods.statefulset(*_statefulset(), OWNER)
    pods.forget_all()
    assert pods.pod("MODIFIED", _pod(BACKOFF, restarts=3)) == []
