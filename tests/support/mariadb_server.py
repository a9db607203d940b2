"""A real, throw-away MariaDB server (``mariadbd``) for the C++ TANGO tier, with its own data.

Started once per test session by ``tests/integration/tango/conftest.py`` (fixture ``mariadb``)
and once per run by ``make bench-tango``; the C++ DataBaseds of ``tests/support/tango_db.py``
keep their databases in it. Modelled on ``devstack/redis_server.py``.

Where things come from and go:

* the programs are Debian's ``mariadb-server`` package (``mariadbd``, ``mariadb-install-db``)
  and its ``mariadb`` client; ``scripts/system-deps.sh`` (``make system-deps``) installs them;
* ``start`` makes a data directory in the work directory (a new temporary directory unless one
  is given) with ``mariadb-install-db``: root without a password
  (``--auth-root-authentication-method=normal``), no test database. Then ``mariadbd`` runs on it
  on a free loopback TCP port, with its socket, pid file and error log (``mariadb.log``) in the
  work directory. Both are started with ``--no-defaults``: nothing of the machine's
  ``/etc/mysql`` is read, and a MariaDB service the machine may run is neither used nor touched.
  The server's character set is utf8mb4, as with Debian's packaged configuration;
* once it answers, a user (``user``/``password``, a random password) is created with every
  privilege on the databases named ``tango_test_*``: clients such as the DataBaseds log in with
  it over TCP at ``address``. ``admin`` runs SQL as root over the socket;
* ``close`` stops the server and deletes the work directory if this object made it, data
  included. If the server does not start, the error says why and ends with the log's tail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from devstack.ports import free_port

INSTALL_HINT = (
    "apt-get install mariadb-server tango-db tango-test "
    "(`make system-deps` does it when it runs as root)"
)
BINARIES = {
    "mariadbd": ("/usr/sbin/mariadbd", "mariadb-server"),
    "mariadb-install-db": ("/usr/bin/mariadb-install-db", "mariadb-server"),
    "mariadb": ("/usr/bin/mariadb", "mariadb-client"),
}
"""Program -> (where Debian puts it, the package that has it)."""
USER = "tango"
DATABASE_PATTERN = r"tango\_test\_%"
"""The databases ``user`` may use: a ``LIKE`` pattern (``tango_test_`` and anything after)."""
SERVER_OPTIONS = (
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    # a small, throw-away server: small buffers and log, no waiting for the disk at each commit
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
)
"""Options of both ``mariadb-install-db`` and ``mariadbd``, after ``--no-defaults``."""
LOG_TAIL_LINES = 20
PORT_TAKEN = "port taken"


class MariaDBServerError(RuntimeError):
    """mariadbd is missing, or did not start, or refused an administrative statement."""


def find_binary(name: str) -> str | None:
    """Where program ``name`` (a key of ``BINARIES``) is, or None."""
    debian_path, _ = BINARIES[name]
    for candidate in (shutil.which(name), debian_path):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def missing() -> str | None:
    """What of MariaDB is not installed here and how to install it, or None when all is."""
    absent = sorted({package for name, (_, package) in BINARIES.items() if not find_binary(name)})
    if not absent:
        return None
    return f"{', '.join(absent)} not installed: {INSTALL_HINT}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


class MariaDBServer:
    """One mariadbd process with a data directory of its own; ``address`` once started."""

    def __init__(self, workdir: Path | None = None, *, start_timeout: float = 30.0) -> None:
        reason = missing()
        if reason:
            raise MariaDBServerError(reason)
        self.server_binary = find_binary("mariadbd") or ""
        self.install_binary = find_binary("mariadb-install-db") or ""
        self.client_binary = find_binary("mariadb") or ""
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="mariadb-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.user = USER
        self.password = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        """How long the last ``start`` took, data directory included."""

    # --- where things are ---------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "mariadb.sock"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mariadb.pid"

    @property
    def log(self) -> Path:
        """The server's error log (and ``mariadb-install-db``'s output, before it)."""
        return self.workdir / "mariadb.log"

    @property
    def address(self) -> str:
        """``host:port`` of the TCP listener, as the C++ DataBaseds' ``MYSQL_HOST`` takes it."""
        return f"127.0.0.1:{self.port}"

    def _as_root_user(self) -> list[str]:
        """``--user=root`` when running as root (mariadbd refuses root otherwise), else nothing."""
        return ["--user=root"] if os.geteuid() == 0 else []

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the data directory if needed, start on a free port, create ``user``.

        Retries on another port if the first was taken meanwhile; ``MariaDBServerError`` with
        the log's tail when it does not start.
        """
        started = time.monotonic()
        if not (self.datadir / "mysql").is_dir():
            self._install()
        for _ in range(3):
            failure = self._launch(free_port())
            if failure is None:
                break
            if failure != PORT_TAKEN:
                raise MariaDBServerError(
                    f"mariadbd {failure}; the end of {self.log}:\n{log_tail(self.log)}"
                )
        else:
            raise MariaDBServerError(f"mariadbd found no free port; see {self.log}")
        self.execute(
            f"CREATE USER IF NOT EXISTS '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL PRIVILEGES ON `{DATABASE_PATTERN}`.* TO '{self.user}'@'127.0.0.1';"
        )
        self.startup_seconds = time.monotonic() - started

    def _install(self) -> None:
        with self.log.open("ab") as log:
            done = subprocess.run(
                [
                    self.install_binary,
                    "--no-defaults",
                    *SERVER_OPTIONS,
                    f"--datadir={self.datadir}",
                    *self._as_root_user(),
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            raise MariaDBServerError(
                f"mariadb-install-db failed (exit {done.returncode}); "
                f"the end of {self.log}:\n{log_tail(self.log)}"
            )

    def _launch(self, port: int) -> str | None:
        """Start on ``port``: None once it answers, else why not (``PORT_TAKEN``: try another)."""
        self.port = port
        log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:  # what it says before its error log is open
            self.process = subprocess.Popen(
                [
                    self.server_binary,
                    "--no-defaults",
                    *SERVER_OPTIONS,
                    f"--datadir={self.datadir}",
                    *self._as_root_user(),
                    "--bind-address=127.0.0.1",
                    f"--port={port}",
                    f"--socket={self.socket_path}",
                    f"--pid-file={self.pid_file}",
                    f"--log-error={self.log}",
                    f"--tmpdir={self.workdir}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                with self.log.open("rb") as log:
                    log.seek(log_start)
                    said = log.read().decode(errors="replace")
                if "Address already in use" in said:
                    return PORT_TAKEN
                return f"exited with code {code} while starting"
            if self.socket_path.exists() and self.admin("-e", "SELECT 1").returncode == 0:
                return None
            time.sleep(0.05)
        self.stop()
        return f"did not answer within {self.start_timeout:g} s"

    def stop(self) -> None:
        """Shut the server down (SIGTERM: a clean InnoDB shutdown; killed after 30 s)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its directory (data too) if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- talking to it ----------------------------------------------------------------------------
    def admin(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The ``mariadb`` client as root over the socket with ``args``; SQL on stdin if given."""
        argv = [
            self.client_binary,
            "--no-defaults",
            f"--socket={self.socket_path}",
            "--user=root",
            "--batch",
            "--connect-timeout=2",
            *args,
        ]
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )

    def execute(self, sql: str, database: str | None = None) -> None:
        """Run SQL statements as root; ``MariaDBServerError`` with the client's error if any."""
        done = self.admin(*([database] if database else []), stdin=sql)
        if done.returncode != 0:
            where = f" in {database}" if database else ""
            raise MariaDBServerError(f"SQL{where} failed: {done.stderr.strip()}")
