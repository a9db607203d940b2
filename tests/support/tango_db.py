"""Real, throw-away TANGO databases (DataBaseds) for the tests, on free loopback ports.

Two kinds, one interface (:class:`TangoDatabase`):

* :class:`PyTangoDatabase` — PyTango's own DataBaseds, ``python -m tango.databaseds.database
  --host 127.0.0.1 --port P 2`` (= ``-ORBendPoint giop:tcp:127.0.0.1:P``) with
  ``PYTANGO_DATABASE_NAME`` naming an sqlite file in the work directory. Ships with the
  ``pytango`` wheel, so it is always available. ``restart`` keeps the file: the DB comes
  back on the same port with its data.
* :class:`CppDatabase` — Debian's C++ DataBaseds (``/usr/lib/tango/DataBaseds`` from the
  ``tango-db`` package, ``DataBaseds 2 -ORBendPoint giop:tcp:127.0.0.1:P`` with the
  ``MYSQL_HOST``/``MYSQL_USER``/``MYSQL_PASSWORD``/``MYSQL_DATABASE`` variables) on the tests'
  own MariaDB (:class:`tests.support.mariadb_server.MariaDBServer`, which the caller starts),
  in a database of its own (``tango_test_<random>``, created as root from the SQL the package
  ships under ``/usr/share/dbconfig-common/data/tango-db/install/mysql`` and
  ``/usr/share/tango-db``, and dropped by ``close``). :func:`cpp_unavailable` says which
  Debian packages are missing, for a skip (or, under ``CI=true``, a failure).

Both wait until ``sys/database/2`` answers a real query before ``start`` returns. The
object also reads the DB device's per-command call counters (``call_counts``: the
``Timing_index``/``Timing_calls`` attributes both DataBaseds implement), so a test can
count DB round trips without wrapping anything, and dumps every table through
``DbMySqlSelect`` (``snapshot``) to prove that an operation wrote nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import tango

from devstack.ports import free_port
from tests.support import mariadb_server
from tests.support.mariadb_server import MariaDBServer, MariaDBServerError

CPP_DATABASEDS = Path("/usr/lib/tango/DataBaseds")
CPP_SCHEMA = Path("/usr/share/tango-db")
CPP_INSTALL_SQL = Path("/usr/share/dbconfig-common/data/tango-db/install/mysql")
CPP_TANGOTEST = Path("/usr/lib/tango/TangoTest")
CPP_PROGRAMS = {
    CPP_DATABASEDS: "tango-db",
    CPP_INSTALL_SQL: "tango-db",
    CPP_TANGOTEST: "tango-test",
}
"""What the C++ tier needs of Debian's TANGO packages -> the package that has it."""

SNAPSHOT_TABLES = (
    "device",
    "server",
    "property",
    "property_device",
    "property_attribute_device",
    "property_class",
    "property_attribute_class",
    "property_hist",
    "property_device_hist",
    "property_attribute_device_hist",
    "property_class_hist",
    "property_attribute_class_hist",
    "attribute_alias",
)


class TangoDatabaseError(RuntimeError):
    """The DataBaseds is missing, or did not start."""


Row = tuple[str | None, ...]


def rows(result: Any) -> list[Row]:
    """``DbMySqlSelect``'s (longs, strings) answer as rows; NULL is None."""
    longs, strings = result
    count, width = int(longs[-2]), int(longs[-1])
    flags = list(longs[:-2])
    cells = [value if flag else None for value, flag in zip(strings, flags, strict=True)]
    return [tuple(cells[i * width : (i + 1) * width]) for i in range(count)]


FREEZE_TIMEOUT = 10.0
"""How long ``freeze`` waits for every thread of the DataBaseds to be stopped."""


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in state T (stopped), read from /proc."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            # the state follows the command name, which is in parentheses and may hold spaces
            states.append(stat.read_text().rpartition(")")[2].split()[0])
        except (OSError, IndexError):
            continue
    return bool(states) and all(state == "T" for state in states)


class TangoDatabase:
    """One DataBaseds process. Subclasses say how to launch it."""

    instance = "2"
    kind = "DataBaseds"

    def __init__(self, workdir: Path | None = None, *, start_timeout: float = 30.0) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="tangodb-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._counter_proxy: Any = None

    # --- what subclasses provide ------------------------------------------------------------
    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def tango_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "databaseds.log"

    def start(self) -> None:
        """Start on a free port (retrying if another process took it first)."""
        for _ in range(3):
            if self._launch(free_port()):
                return
        raise TangoDatabaseError(f"{self.kind} did not start; see {self.log}")

    def restart(self) -> None:
        """Stop and start again on the same port, with the same data."""
        self.stop()
        if not self._launch(self.port):
            raise TangoDatabaseError(f"{self.kind} did not restart on {self.port}; see {self.log}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: what a crashed pod looks like (no clean unexport)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the port stays open and the kernel accepts connections, nothing answers.

        Returns once every thread of the process is stopped: a signal takes effect when its
        threads are next scheduled, which on a loaded machine can be after the caller's next
        request.
        """
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while not all_threads_stopped(self.process.pid):
            if time.monotonic() > deadline:
                raise TangoDatabaseError(
                    f"{self.kind} (pid {self.process.pid}) not stopped {FREEZE_TIMEOUT:g} s "
                    "after SIGSTOP"
                )
            time.sleep(0.01)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def _launch(self, port: int) -> bool:
        argv, env = self.command(port)
        self.port = port
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, "TANGO_HOST": f"127.0.0.1:{port}", **env},
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._answers():
                self.starts += 1
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
            proxy = tango.DeviceProxy(f"tango://{self.tango_host}/sys/database/{self.instance}")
            proxy.set_timeout_millis(2000)
            return bool(proxy.command_inout("DbImportDevice", f"sys/database/{self.instance}"))
        except (OSError, tango.DevFailed):
            return False

    def close(self) -> None:
        """Stop the server and remove its directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- talking to it ------------------------------------------------------------------------
    def database(self) -> Any:
        """A new ``tango.Database`` client of this DB.

        It is new: no state is shared with the code under test.
        """
        database = tango.Database("127.0.0.1", self.port)
        database.set_timeout_millis(5000)
        return database

    def proxy(self) -> Any:
        proxy = tango.DeviceProxy(f"tango://{self.tango_host}/sys/database/{self.instance}")
        proxy.set_timeout_millis(5000)
        return proxy

    def call_counts(self) -> dict[str, int]:
        """Calls per DB command since the DataBaseds started (its own counters).

        Reads attributes through one proxy kept for the purpose: making a proxy costs a
        ``DbImportDevice`` of its own, which would be counted.
        """
        for attempt in range(2):
            if self._counter_proxy is None or attempt:
                self._counter_proxy = self.proxy()
            try:
                names = self._counter_proxy.read_attribute("Timing_index").value
                counts = self._counter_proxy.read_attribute("Timing_calls").value
                return {str(n): int(c) for n, c in zip(names, counts, strict=True)}
            except tango.DevFailed:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def select(self, sql: str) -> list[Row]:
        return rows(self.proxy().command_inout("DbMySqlSelect", sql))

    def snapshot(self) -> dict[str, list[Row]]:
        """Every row of every configuration and history table, sorted."""
        return {
            table: sorted(self.select(f"SELECT * FROM {table}"), key=repr)
            for table in SNAPSHOT_TABLES
        }


class PyTangoDatabase(TangoDatabase):
    """PyTango's DataBaseds on an sqlite file in the work directory."""

    kind = "PyTango DataBaseds"

    @property
    def sqlite_file(self) -> Path:
        return self.workdir / "tango_database.db"

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [sys.executable, "-m", "tango.databaseds.database"]
        argv += ["--host", "127.0.0.1", "--port", str(port), self.instance]
        return argv, {"PYTANGO_DATABASE_NAME": str(self.sqlite_file)}


def cpp_unavailable() -> str | None:
    """Why the C++ tier cannot run here (which Debian packages are missing), or None."""
    absent = {package for path, package in CPP_PROGRAMS.items() if not path.exists()}
    if mariadb_server.missing():
        absent.add("mariadb-server")
    if not absent:
        return None
    return f"{', '.join(sorted(absent))} not installed: {mariadb_server.INSTALL_HINT}"


def _schema_sql(database: str) -> str:
    """The tango-db package's install script, pointed at ``database`` instead of ``tango``."""
    text = CPP_INSTALL_SQL.read_text()

    def inline(match: re.Match[str]) -> str:
        return Path(match.group(1)).read_text()

    text = re.sub(r"^source\s+(\S+)\s*$", inline, text, flags=re.MULTILINE)
    return re.sub(r"\btango\.", f"{database}.", text)


class CppDatabase(TangoDatabase):
    """Debian's C++ DataBaseds on ``server``, with a database created for this object."""

    kind = "C++ DataBaseds"

    def __init__(
        self, server: MariaDBServer, workdir: Path | None = None, *, start_timeout: float = 30.0
    ) -> None:
        reason = cpp_unavailable()
        if reason:
            raise TangoDatabaseError(reason)
        super().__init__(workdir, start_timeout=start_timeout)
        self.server = server
        self.schema = f"tango_test_{secrets.token_hex(4)}"
        try:
            server.execute(f"CREATE DATABASE {self.schema}")
            server.execute(_schema_sql(self.schema), database=self.schema)
        except MariaDBServerError as error:
            raise TangoDatabaseError(f"creating {self.schema}: {error}") from error

    def command(self, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [str(CPP_DATABASEDS), self.instance, "-ORBendPoint", f"giop:tcp:127.0.0.1:{port}"]
        env = {
            "MYSQL_HOST": self.server.address,
            "MYSQL_USER": self.server.user,
            "MYSQL_PASSWORD": self.server.password,
            "MYSQL_DATABASE": self.schema,
        }
        return argv, env

    def close(self) -> None:
        super().close()
        if self.server.process is not None:
            self.server.admin("-e", f"DROP DATABASE IF EXISTS {self.schema}")
