"""Throw-away X.509 material for the TLS tests: ``devstack.pki``'s CA and certificates.

A server certificate names ``127.0.0.1`` and ``localhost``, which is what redis-py checks the
host name against when it connects to ``rediss://127.0.0.1:PORT``.
"""

from __future__ import annotations

from devstack.pki import Certificate, CertificateAuthority, issue, make_ca

__all__ = ["Certificate", "CertificateAuthority", "issue", "make_ca"]
