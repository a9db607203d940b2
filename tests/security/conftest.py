"""Fixtures of the security tests (docs/security.md).

Kubeemu with the operator's CRDs, real redis-servers, a throw-away PKI made with openssl (the CA the
servers' certificates come from and a second CA nobody trusts), and the operator's own processes —
``python -m watcher`` and ``python -m workers.flower`` started as the chart starts them, logging to
a file of the test (the workers come from ``tests.support.workers.WorkerPool``).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.redis_server import RedisTls
from tests.support.tls import Certificate, CertificateAuthority, issue, make_ca
from tests.support.workers import REPO


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Certificate
    """For 127.0.0.1, signed by ``ca``."""
    stranger: CertificateAuthority
    """A CA that signed nothing here: verifying the server with it must fail."""

    @property
    def redis_tls(self) -> RedisTls:
        return RedisTls(self.server.cert_file, self.server.key_file, self.ca.cert_file)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "test-ca")
    return Pki(ca=ca, server=issue(ca, directory, "redis"), stranger=make_ca(directory, "stranger"))


# --- the operator's processes, as the chart runs them ---------------------------------------


@dataclass
class Process:
    """A process of the operator whose output goes to ``log``."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def spawn(command: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("ab") as output:
        popen = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    return Process(popen, log)


def start_watcher(env: dict[str, str], log: Path) -> Process:
    """``python -m watcher`` with a short Lease in ``default``."""
    return spawn(
        [sys.executable, "-m", "watcher"],
        {
            "TANGO_OPERATOR_IDENTITY": "security-watcher",
            "TANGO_OPERATOR_LEASE_NAMESPACE": "default",
            "TANGO_OPERATOR_LEASE_DURATION_SECONDS": "3",
            "TANGO_OPERATOR_LEASE_RENEW_SECONDS": "2",
            "TANGO_OPERATOR_LEASE_RETRY_SECONDS": "0.5",
            **env,
        },
        log,
    )


@dataclass
class Flower:
    process: Process
    base: str
    credentials: str

    def get(self, path: str, *, credentials: str | None = None) -> tuple[int, str]:
        """(status, body) of ``path``, with the Flower credentials unless told otherwise."""
        request = urllib.request.Request(self.base + path)
        token = base64.b64encode((credentials or self.credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def start_flower(env: dict[str, str], log: Path, credentials: str) -> Flower:
    """``python -m workers.flower`` as the chart's container runs it.

    On a free loopback port; returned once it answers /healthcheck.
    """
    port = free_port()
    process = spawn(
        [
            sys.executable,
            "-m",
            "workers.flower",
            "--address=127.0.0.1",
            f"--port={port}",
            "--max_tasks=10000",
            "--purge_offline_workers=600",
        ],
        {**env, "FLOWER_BASIC_AUTH": credentials},
        log,
    )
    flower = Flower(process, f"http://127.0.0.1:{port}", credentials)
    deadline = time.monotonic() + 30
    while True:
        assert process.popen.poll() is None, process.output()
        try:
            with urllib.request.urlopen(flower.base + "/healthcheck", timeout=2) as response:
                if response.status == 200:
                    return flower
        except OSError:
            pass
        assert time.monotonic() < deadline, f"Flower did not start:\n{process.output()}"
        time.sleep(0.2)
