"""A real, throw-away ``redis-server`` (no persistence, its own port and directory).

Started by the tests' fixtures, the benchmarks and `make demo`: it runs
the Debian ``redis-server`` binary on a free loopback port in a temporary directory with
``--save "" --appendonly no``, waits until it answers PING, and stops it. ``restart``
simulates a Redis restart; by default the data is gone afterwards, as with a Redis pod
that has no persistence.

Optionally it requires a password (``password``, set with ``CONFIG SET`` after the start,
so it is never on the command line), and it speaks TLS only (``tls``: Debian's redis-server 7
is built with TLS; ``--port 0 --tls-port``, the certificate files the caller made), as the
chart's bundled Redis with ``redis.tls.enabled`` does. ``url`` never holds the password.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from devstack.ports import free_port

INSTALL_HINT = (
    "redis-server is not installed: run `apt-get install redis-server` "
    "(`make test` installs it for you)"
)


class RedisServerError(RuntimeError):
    """redis-server is missing, or did not start."""


def find_binary() -> str:
    """Return the path of the redis-server binary; ``RedisServerError`` with a hint if absent."""
    for candidate in (
        shutil.which("redis-server"),
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise RedisServerError(INSTALL_HINT)


@dataclass(frozen=True)
class RedisTls:
    """The PEM files of a TLS redis-server.

    Its certificate and key, and the CA it trusts for client certificates (which it asks for only
    with ``client_certificates``).
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    client_certificates: bool = False


class RedisServer:
    """One redis-server process; ``url`` and ``client()`` point at it once started."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        start_timeout: float = 10.0,
        tls: RedisTls | None = None,
        password: str | None = None,
        unix_socket: bool = False,
    ) -> None:
        self.binary = find_binary()
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-")) if workdir is None else workdir
        self.start_timeout = start_timeout
        self.tls = tls
        self.password = password
        self.socket_path = self.workdir / "redis.sock" if unix_socket else None
        """With ``unix_socket``: the server also listens on this socket (``socket_url``)."""
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL of this server, without the password.

        ``redis://``, or with TLS ``rediss://`` (the CA file is the clients' business:
        ``TANGO_OPERATOR_REDIS_CA_FILE``).
        """
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def socket_url(self) -> str:
        """``unix://`` URL of the socket (redis-py's form), without the password."""
        if self.socket_path is None:
            raise RedisServerError("this redis-server was started without unix_socket=True")
        return f"unix://{self.socket_path}?db=0"

    def _connection_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port}
        if self.password is not None:
            options["password"] = self.password
        if self.tls is not None:
            options.update(ssl=True, ssl_ca_certs=str(self.tls.ca_file))
            if self.tls.client_certificates:
                options.update(ssl_certfile=str(self.tls.cert_file))
                options.update(ssl_keyfile=str(self.tls.key_file))
        return options

    def client(self, *, decode_responses: bool = False) -> redis.Redis:
        """An administrative client (password and CA included)."""
        return redis.Redis(**self._connection_options(), decode_responses=decode_responses)

    def start(self) -> None:
        """Start on a free port (retrying if another process took it first)."""
        for _ in range(3):
            if self._launch(free_port()):
                return
        raise RedisServerError(f"redis-server did not start; see {self.workdir / 'redis.log'}")

    def stop(self) -> None:
        """Terminate the server (killed after 5 s) if it runs."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self, *, flush: bool = True) -> None:
        """Stop and start again on the same port.

        ``flush=True``: the server comes back empty (a restart without persistence);
        ``flush=False``: the data is saved to an RDB file first and loaded again (a server
        already stopped comes back with what it saved last).
        """
        dump = self.workdir / "dump.rdb"
        if not flush and self.process is not None:
            with self.client() as conn:
                conn.save()
        self.stop()
        if flush:
            dump.unlink(missing_ok=True)
        if not self._launch(self.port):
            raise RedisServerError(
                f"redis-server did not restart on port {self.port}; "
                f"see {self.workdir / 'redis.log'}"
            )

    def _launch(self, port: int) -> bool:
        log = self.workdir / "redis.log"
        self.port = port
        if self.tls is None:
            listen = ["--port", str(port)]
        else:
            listen = [
                "--port", "0",
                "--tls-port", str(port),
                "--tls-cert-file", str(self.tls.cert_file),
                "--tls-key-file", str(self.tls.key_file),
                "--tls-ca-cert-file", str(self.tls.ca_file),
                "--tls-auth-clients", "yes" if self.tls.client_certificates else "no",
            ]  # fmt: skip
        if self.socket_path is not None:
            listen += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(
            [
                self.binary,
                *listen,
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--dbfilename", "dump.rdb",
                "--logfile", str(log),
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        options = {**self._connection_options(), "socket_timeout": 1}
        options.pop("password", None)  # not set yet: a fresh server has none
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            try:
                with redis.Redis(**options) as conn:
                    if conn.ping():
                        if self.password is not None:
                            conn.config_set("requirepass", self.password)
                        return True
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(0.02)
        self.stop()
        return False

    def close(self) -> None:
        """Stop the server and remove its directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
