"""Throw-away X.509 material for the TLS tests: a CA and certificates it signs.

Made with the ``openssl`` command line (the ``cryptography`` package is not among the
project's dependencies), in a directory of the test; nothing is reused between sessions.
Certificates are valid for a day, with EC P-256 keys (fast to make). A server certificate
names ``127.0.0.1`` and ``localhost``, which is what redis-py checks the host name against
when it connects to ``rediss://127.0.0.1:PORT``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class CertificateAuthority:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    ca: CertificateAuthority


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("the openssl command is missing: apt-get install openssl")
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_ca(directory: Path, name: str) -> CertificateAuthority:
    """A self-signed CA certificate ``<name>.crt`` and its key, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", *KEY,
        "-keyout", str(ca.key_file), "-out", str(ca.cert_file),
        "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return ca


def issue(
    ca: CertificateAuthority, directory: Path, name: str, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> Certificate:
    """A certificate for ``hosts`` (IP addresses or DNS names) signed by ``ca``.

    It is usable by a server and by a client.
    """
    directory.mkdir(parents=True, exist_ok=True)
    certificate = Certificate(directory / f"{name}.crt", directory / f"{name}.key", ca)
    request = directory / f"{name}.csr"
    names = [f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts]
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        f"subjectAltName={','.join([*names, 'DNS:localhost'])}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "req", *KEY, "-keyout", str(certificate.key_file), "-out", str(request),
        "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request),
        "-CA", str(ca.cert_file), "-CAkey", str(ca.key_file), "-CAcreateserial",
        "-out", str(certificate.cert_file), "-days", "1", "-extfile", str(extensions),
        cwd=directory,
    )  # fmt: skip
    return certificate
