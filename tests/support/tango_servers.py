"""Real TANGO device servers for the tests: register them in a test DB, start, stop, kill.

A server is any TANGO device server executable: a PyTango script from
``tests/data/tango`` (:data:`ECHO_SERVER`, class ``Echo``, started with this interpreter)
or a C++ binary such as Debian's ``/usr/lib/tango/TangoTest``. It runs as a subprocess
with ``TANGO_HOST`` set to the test DB and ``-ORBendPoint giop:tcp:127.0.0.1:`` (a free
loopback port), in a session of its own so a test can kill it like a crashed pod.

Typical use::

    servers = TangoServers(db, tmp_path)              # db: a tests.support.tango_db DB
    servers.register("EchoServer/a", "Echo", ["test/echo/a1"])
    running = servers.start_echo("a")                 # waits until exported and pinged
    running.kill()                                     # SIGKILL: exported flag stays set
    servers.stop_all()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tango

from tests.support.tango_db import TangoDatabase

DATA = Path(__file__).resolve().parent.parent / "data" / "tango"
ECHO_SERVER = DATA / "echo_server.py"
TANGO_TEST = Path("/usr/lib/tango/TangoTest")


class TangoServerError(RuntimeError):
    """A device server exited or did not export its devices in time."""


@dataclass
class RunningServer:
    server_instance: str
    devices: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log: Path
    db: TangoDatabase = field(repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM and wait: the server unexports its devices on the way out."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no unexport, the DB still says "exported" with a dead IOR."""
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self, timeout: float = 10.0) -> None:
        """SIGSTOP, and wait until every thread is stopped.

        The signal is only queued when ``kill`` returns, and on a busy machine a server thread may
        still answer a request before the kernel stops it.
        """
        os.kill(self.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not _all_threads_stopped(self.process.pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"server {self.process.pid} did not stop in {timeout}s")
            time.sleep(0.01)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every device is exported in the DB and answers a ping."""
        deadline = time.monotonic() + timeout
        pending = list(self.devices)
        while pending and time.monotonic() < deadline:
            if not self.alive():
                raise TangoServerError(
                    f"{self.server_instance} exited with {self.process.returncode}; "
                    f"log:\n{self.log.read_text(errors='replace')[-3000:]}"
                )
            if _ready(self.db, pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.1)
        if pending:
            raise TangoServerError(f"{self.server_instance}: {pending} not ready in {timeout} s")


def _ready(db: TangoDatabase, device: str) -> bool:
    try:
        if not db.database().import_device(device).exported:
            return False
        proxy = tango.DeviceProxy(f"tango://{db.tango_host}/{device}")
        proxy.set_timeout_millis(2000)
        proxy.ping()
        return True
    except tango.DevFailed:
        return False


class TangoServers:
    """Registers and runs device servers against one test DB; ``stop_all`` cleans up."""

    def __init__(self, db: TangoDatabase, workdir: Path) -> None:
        self.db = db
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.running: list[RunningServer] = []

    def register(
        self,
        server_instance: str,
        class_name: str,
        devices: Sequence[str],
        properties: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        """Define the devices of a server instance (and their device properties)."""
        database = self.db.database()
        for device in devices:
            info: Any = tango.DbDevInfo()
            info.name = device
            info._class = class_name
            info.server = server_instance
            database.add_device(info)
        for device, values in (properties or {}).items():
            database.put_device_property(device, values)

    def start(
        self,
        argv: Sequence[str],
        server_instance: str,
        devices: Sequence[str],
        *,
        wait: bool = True,
        timeout: float = 30.0,
    ) -> RunningServer:
        """Run ``argv`` (the executable and its instance name) and wait for ``devices``."""
        log = self.workdir / f"{server_instance.replace('/', '-')}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*argv, "-ORBendPoint", "giop:tcp:127.0.0.1:"],
                env={**os.environ, "TANGO_HOST": self.db.tango_host},
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = RunningServer(server_instance, tuple(devices), process, log, self.db)
        self.running.append(running)
        if wait:
            running.wait_ready(timeout)
        return running

    def start_echo(self, instance: str, *, wait: bool = True) -> RunningServer:
        """Start ``EchoServer/<instance>`` for its registered devices.

        ``EchoServer`` is the PyTango test server.
        """
        server_instance = f"EchoServer/{instance}"
        listing = list(self.db.database().get_device_class_list(server_instance))
        devices = [d for d, c in zip(listing[0::2], listing[1::2], strict=True) if c == "Echo"]
        argv = [sys.executable, str(ECHO_SERVER), instance]
        return self.start(argv, server_instance, devices, wait=wait)

    def stop_all(self) -> None:
        for running in self.running:
            running.stop()
        self.running.clear()


def _all_threads_stopped(pid: int) -> bool:
    """Every thread of ``pid`` is in state T (stopped) or t (traced)."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()
        ]
    except (OSError, IndexError):
        return False
    return bool(states) and all(state in ("T", "t") for state in states)
