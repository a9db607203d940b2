"""A server's container as a kubelet reports it: starting, running, or failing — and why.

Input: a Pod as the API returns it (a watch event in the watcher, a GET in a worker). Output:
a ``ContainerReport`` of its first container — restarts, why it waits, how its last run ended
(exit code, reason, and the termination message, which with ``terminationMessagePolicy:
FallbackToLogsOnError`` is the tail of its output). The watcher enqueues the owner when the
``trouble`` fingerprint changes (``watcher.pods``); a DeviceServer reconcile turns a report into
its status (``workers.reconcile.deviceserver``). Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
"""Waiting reasons of a container on its way up: nothing is wrong (yet)."""
MAX_OUTPUT = 2048
"""Longest termination message kept (a kubelet keeps at most 2048 bytes of log tail too)."""
MAX_OUTPUT_LINES = 20
"""Last lines of the termination message kept for the status."""


@dataclass(frozen=True)
class ContainerReport:
    """The first container of a pod, reduced to what says whether and why it fails."""

    restarts: int = 0
    running: bool = False
    waiting_reason: str | None = None
    waiting_message: str = ""
    last_exit_code: int | None = None
    last_reason: str | None = None
    """How the last run ended: ``Error``, ``StartError``, ``OOMKilled``, ``Completed``, ..."""
    last_output: str = ""
    """The last run's termination message (its output's tail), bounded."""

    @property
    def abnormal_wait(self) -> str | None:
        """The waiting reason, unless it is one of a container on its way up."""
        return None if self.waiting_reason in STARTING_REASONS else self.waiting_reason

    @property
    def failing(self) -> bool:
        """Not running, and either waiting after a failure or unable to be started at all."""
        return not self.running and (self.abnormal_wait is not None or self.restarts > 0)

    @property
    def reason(self) -> str:
        """A CamelCase reason for the status condition."""
        if self.last_reason == "StartError" or self.waiting_reason in (
            "RunContainerError",
            "CreateContainerError",
            "StartError",
        ):
            return "CannotStart"
        if self.abnormal_wait:
            return self.abnormal_wait
        if self.restarts > 0:
            return "Restarting"
        return "Starting"

    def trouble(self) -> tuple[int, str | None]:
        """What the watcher compares between two events: restarts and an abnormal wait.

        A healthy start (ContainerCreating → running → ready) leaves it unchanged, so the
        normal path costs no reconcile; the readiness itself comes from the StatefulSet.
        """
        return (self.restarts, self.abnormal_wait)

    def describe(self) -> str:
        """One line for the status message: what is wrong and how it last ended."""
        parts: list[str] = []
        if self.reason == "CannotStart":
            detail = self.last_output or self.waiting_message
            parts.append(f"cannot start: {first_line(detail) or self.reason}")
        elif self.last_exit_code is not None:
            parts.append(f"exited with code {self.last_exit_code} ({self.last_reason or 'Error'})")
        elif self.abnormal_wait:
            parts.append(f"{self.abnormal_wait}: {first_line(self.waiting_message)}".rstrip(": "))
        if self.restarts:
            parts.append(f"restarted {self.restarts} time{'s' if self.restarts != 1 else ''}")
        if self.last_output and self.reason != "CannotStart":
            parts.append(f"last output: {last_line(self.last_output)}")
        return "; ".join(parts)

    def as_status(self) -> JsonDict:
        """The ``status.container`` field (empty values left out)."""
        status: JsonDict = {"restartCount": self.restarts, "reason": self.reason}
        if self.waiting_reason:
            status["waitingReason"] = self.waiting_reason
        if self.waiting_message:
            status["waitingMessage"] = bounded(self.waiting_message, 512)
        if self.last_exit_code is not None:
            status["lastExitCode"] = self.last_exit_code
        if self.last_reason:
            status["lastTerminationReason"] = self.last_reason
        if self.last_output:
            status["lastOutput"] = self.last_output
        return status


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (stripped)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (stripped), at most 200 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bounded(lines[-1], 200) if lines else ""


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail(text: str) -> str:
    """The last ``MAX_OUTPUT_LINES`` lines of ``text``, at most ``MAX_OUTPUT`` characters."""
    lines = text.rstrip("\n").splitlines()[-MAX_OUTPUT_LINES:]
    kept = "\n".join(lines)
    return kept if len(kept) <= MAX_OUTPUT else "…" + kept[-(MAX_OUTPUT - 1) :]


def report(pod: JsonDict | None, container: str | None = None) -> ContainerReport | None:
    """The report of ``container`` (default: the first) of ``pod``; None when not known yet."""
    if pod is None:
        return None
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if container is not None:
        statuses = [s for s in statuses if s.get("name") == container]
    if not statuses:
        return None
    entry = statuses[0]
    state = entry.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (entry.get("lastState") or {}).get("terminated") or {}
    terminated_now = state.get("terminated") or {}
    ended = terminated_now or last
    return ContainerReport(
        restarts=int(entry.get("restartCount") or 0),
        running="running" in state,
        waiting_reason=waiting.get("reason") or None,
        waiting_message=str(waiting.get("message") or ""),
        last_exit_code=int(ended["exitCode"]) if "exitCode" in ended else None,
        last_reason=ended.get("reason") or None,
        last_output=tail(str(ended.get("message") or "")),
    )
