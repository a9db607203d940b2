"""One pod's container as a local process: start, readiness, restarts, hooks, stop.

Driven by ``devstack.runner.kubelet``, which calls ``step`` on every tick and reports the
returned ``Observation`` in the pod's status; the ``Launch`` comes from
``devstack.runner.plan``. Like a kubelet with ``restartPolicy: Always``: a process that
exits is started again after a back-off (here 1 s doubling to 30 s, reset after a minute of
running, where a kubelet uses 10 s to 5 min — this is a development stack), and reported
meanwhile as waiting in ``CrashLoopBackOff`` with its last exit code. Readiness is the
container's TCP readiness probe against its local port, probed at most every
``probe_period_cap`` seconds (a kubelet would wait the probe's full period); a container
without a probe is ready once started. The postStart hook runs before the container counts
as started and a failing hook kills it, as in Kubernetes; preStop runs before SIGTERM, and
SIGKILL follows after the grace period.

Output: every start appends to the pod's one log file (``log_path``), after a ``--- start``
line; each ``Run`` remembers where in that file its output begins and ends, so the node's log
server (``devstack.runner.logserver``) answers ``kubectl logs`` with the current run's output
and ``--previous`` with the last finished run's, as a kubelet does with one file per container
instance.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.runner.plan import Launch

log = logging.getLogger(__name__)

HOOK_TIMEOUT = 30.0
OUTPUT_TAIL_BYTES = 2048
OUTPUT_TAIL_LINES = 80
"""A kubelet's FallbackToLogsOnError keeps at most 80 lines and 2048 bytes of the log."""
MAX_GRACE = 10.0
"""A stopping process gets at most this long after SIGTERM (the pod's own grace period is
often 30 s; waiting that long here only slows a demo down)."""


@dataclass(frozen=True)
class Observation:
    """What the kubelet last saw of one local process, for the pod status."""

    state: str
    """``pending`` | ``running`` (started, not ready) | ``ready`` | ``backoff`` (crashed,
    waiting to start again) | ``config-error`` (the container cannot be set up yet)"""
    restarts: int = 0
    message: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    """Unix time the current process started."""
    last_run: Run | None = None
    """The last run that ended (the container's ``lastState.terminated``), if any."""


@dataclass
class Run:
    """One start of the container (a container instance, to a kubelet): times, exit, output.

    ``log_start``/``log_end`` are byte offsets into the pod's log file; ``log_end`` and
    ``finished_at`` stay None while the process runs.
    """

    started_at: float
    """Unix time."""
    log_start: int
    finished_at: float | None = None
    log_end: int | None = None
    exit_code: int | None = None
    """As ``subprocess`` reports it: negative for a signal (-9 is SIGKILL)."""
    start_error: str | None = None
    """Why the process could not be started at all (a runtime's ``StartError``)."""
    output_tail: str = ""
    """The end of this run's output (at most ``OUTPUT_TAIL_BYTES``), for a termination
    message under ``terminationMessagePolicy: FallbackToLogsOnError``."""


@dataclass(frozen=True)
class RestartPolicy:
    """When a local process that exited is started again: exponential backoff, like a kubelet."""

    base: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, crashes: int) -> float:
        """Seconds to wait before the next start after ``crashes`` crashes."""
        return float(min(self.cap, self.base * 2 ** max(0, crashes - 1)))


def _port_open(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalPod:
    """The process of one container of one pod (the kubelet keeps one per pod uid)."""

    def __init__(
        self,
        name: str,
        launch: Launch,
        log_path: Path,
        *,
        restart: RestartPolicy | None = None,
        probe_period_cap: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.launch = launch
        self.log_path = log_path
        self.restart = restart or RestartPolicy()
        self.probe_period = min(launch.probe_period, probe_period_cap)
        self.clock = clock
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.crashes = 0
        self.next_start = clock()
        self.next_probe = 0.0
        self.started_at: float | None = None
        self.started_wall: float | None = None
        self.ready = False
        self.last_exit: int | None = None
        self.message = ""
        self.hook_failure: str | None = None
        self.runs: list[Run] = []
        """The current run and the one before it (older ones are forgotten)."""

    # -- lifecycle ----------------------------------------------------------------------

    def _start(self) -> None:
        self.launch.cwd.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as output:
            output.write(f"--- start: {' '.join(self.launch.argv)}\n".encode())
            output.flush()
            log_start = output.tell()
            self.process = subprocess.Popen(
                self.launch.argv,
                env=self.launch.env,
                cwd=self.launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = self.clock()
        self.started_wall = time.time()
        self.runs = [*self.runs[-1:], Run(started_at=self.started_wall, log_start=log_start)]
        self.ready = False
        self.next_probe = self.started_at
        log.info("started pod=%s pid=%d", self.name, self.process.pid)
        if self.launch.post_start and not self._hook(self.launch.post_start, "postStart"):
            self._kill()

    def _hook(self, command: list[str], which: str) -> bool:
        try:
            with self.log_path.open("ab") as output:
                result = subprocess.run(
                    command,
                    env=self.launch.env,
                    cwd=self.launch.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=HOOK_TIMEOUT,
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.hook_failure = f"{which} hook failed: {exc}"
            return False
        if result.returncode != 0:
            self.hook_failure = f"{which} hook exited with {result.returncode}"
            return False
        return True

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def step(self) -> Observation:
        """Advance the pod by one tick and say how it stands."""
        now = self.clock()
        if self.process is None:
            if now < self.next_start:
                return self._observation("backoff")
            try:
                self._start()
            except OSError as exc:
                # as a container runtime says it: the run ends at once with StartError, 128
                program = self.launch.argv[0]
                reason = exc.strerror or str(exc)
                if isinstance(exc, FileNotFoundError):
                    reason = "executable file not found in $PATH"
                self.runs = [
                    *self.runs[-1:],
                    Run(
                        started_at=time.time(),
                        log_start=0,
                        start_error=f'exec: "{program}": {reason}',
                    ),
                ]
                self._crashed(now, code=128)
                return self._observation("backoff")
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            self._crashed(now, code=code)
            return self._observation("backoff")
        if not self.ready and now >= self.next_probe:
            self.next_probe = now + self.probe_period
            port = self.launch.readiness_port
            self.ready = port is None or _port_open(self.launch.bind_address, port)
        if self.started_at is not None and now - self.started_at > self.restart.reset_after:
            self.crashes = 0
        return self._observation("ready" if self.ready else "running")

    def _finish_run(self, code: int) -> None:
        """Close the current run (if one is open) with its exit code and output's end."""
        if not self.runs or self.runs[-1].finished_at is not None:
            return
        run = self.runs[-1]
        if run.start_error is not None:
            run.log_end = run.log_start
        else:
            try:
                run.log_end = self.log_path.stat().st_size
            except OSError:
                run.log_end = run.log_start
            run.output_tail = self._output_tail(run)
        run.exit_code = code
        run.finished_at = time.time()

    def _output_tail(self, run: Run) -> str:
        """The last lines of ``run``'s output, bounded as a kubelet bounds a log fallback."""
        end = run.log_end if run.log_end is not None else run.log_start
        start = max(run.log_start, end - OUTPUT_TAIL_BYTES)
        try:
            with self.log_path.open("rb") as output:
                output.seek(start)
                data = output.read(end - start)
        except OSError:
            return ""
        lines = data.decode(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:]
        return "\n".join(lines)

    def current_run(self) -> Run | None:
        """The latest run: the running process's, or the last one that ended."""
        return self.runs[-1] if self.runs else None

    def last_finished_run(self) -> Run | None:
        """The latest run that ended (a kubelet's ``lastState.terminated``)."""
        finished = [run for run in self.runs if run.finished_at is not None]
        return finished[-1] if finished else None

    def _crashed(self, now: float, *, code: int) -> None:
        self._finish_run(code)
        self.process = None
        self.ready = False
        self.last_exit = code
        self.crashes += 1
        self.restarts += 1
        delay = self.restart.delay(self.crashes)
        self.next_start = now + delay
        # a kubelet's CrashLoopBackOff message (and the hook that killed it, if one did)
        hook = f" ({self.hook_failure})" if self.hook_failure else ""
        self.hook_failure = None
        self.message = f"back-off {delay:.0f}s restarting failed container{hook}"
        log.warning("pod=%s exited code=%d restart_in=%.1fs", self.name, code, delay)

    def _observation(self, state: str) -> Observation:
        return Observation(
            state=state,
            restarts=self.restarts,
            message=self.message if state == "backoff" else "",
            exit_code=self.last_exit,
            started_at=self.started_wall,
            last_run=self.last_finished_run(),
        )

    def stop(self) -> None:
        """preStop, SIGTERM, then SIGKILL after the grace period (at most MAX_GRACE)."""
        process = self.process
        if process is None or process.poll() is not None:
            if process is not None and process.returncode is not None:
                self._finish_run(process.returncode)
            self.process = None
            return
        if self.launch.pre_stop:
            self._hook(self.launch.pre_stop, "preStop")
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=min(self.launch.grace_seconds, MAX_GRACE))
        except subprocess.TimeoutExpired:
            self._kill()
        except ProcessLookupError:
            pass
        self._finish_run(process.returncode if process.returncode is not None else -9)
        self.process = None
        log.info("stopped pod=%s", self.name)
