"""Throw-away X.509 material: a CA and the certificates it signs, made with ``openssl``.

Used by the local control plane (``devstack.controlplane``: kube-apiserver's serving
certificate, the admin's client certificate) and by the TLS tests (``tests/support/tls.py``).
The ``openssl`` command line does the work (the ``cryptography`` package is not among the
project's dependencies); everything lands in a directory the caller owns and nothing is
reused between runs. Certificates are valid for a day and use EC P-256 keys (fast to make).
A server certificate names ``localhost`` besides the hosts asked for, which is what TLS
clients check when they connect to ``https://127.0.0.1:PORT`` or ``rediss://localhost``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class PkiError(RuntimeError):
    """openssl is missing, or one of its commands failed (the message holds its stderr)."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and key (PEM files)."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Certificate:
    """A certificate and key (PEM files) signed by ``ca``."""

    cert_file: Path
    key_file: Path
    ca: CertificateAuthority


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise PkiError("the openssl command is missing: apt-get install openssl")
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise PkiError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


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


def _subject_alt_names(hosts: tuple[str, ...]) -> str:
    names = [f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts]
    return ",".join([*names, "DNS:localhost"])


def issue(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    *,
    organisations: tuple[str, ...] = (),
) -> Certificate:
    """A certificate for ``hosts`` (IP addresses or DNS names) signed by ``ca``.

    It is usable by a server and by a client; its subject is ``CN=name`` with an ``O`` per
    entry of ``organisations`` (Kubernetes reads the CN as the user and each O as a group).
    """
    directory.mkdir(parents=True, exist_ok=True)
    certificate = Certificate(directory / f"{name}.crt", directory / f"{name}.key", ca)
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        f"subjectAltName={_subject_alt_names(hosts)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    subject = "".join(f"/O={organisation}" for organisation in organisations) + f"/CN={name}"
    _openssl(
        "req", *KEY, "-keyout", str(certificate.key_file), "-out", str(request),
        "-subj", subject,
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request),
        "-CA", str(ca.cert_file), "-CAkey", str(ca.key_file), "-CAcreateserial",
        "-out", str(certificate.cert_file), "-days", "1", "-extfile", str(extensions),
        cwd=directory,
    )  # fmt: skip
    return certificate


def make_rsa_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """An RSA private key ``<name>.key`` and its public key ``<name>.pub`` (PEM).

    Service-account tokens are signed with it (kube-apiserver's RS256 default).
    """
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    _openssl("genrsa", "-out", str(private), "2048", cwd=directory)
    _openssl("rsa", "-in", str(private), "-pubout", "-out", str(public), cwd=directory)
    return private, public
