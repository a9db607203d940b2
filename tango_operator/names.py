"""Deterministic names of the children of a custom resource.

Data comes from a CR's ``metadata.name``; names go to the rendered manifests (through the
renderer) and to the reconcilers that read children back. A name that would exceed what
Kubernetes allows is cut and given a stable hash suffix, so the same CR always maps to the
same children and two long names that share a prefix do not collide.

Stdlib only.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
# A StatefulSet's pods are <name>-<ordinal> (hostnames, DNS labels) and carry the label
# controller-revision-hash=<name>-<10 chars>, a label value of at most 63 characters.
STATEFULSET_NAME_MAX = DNS_LABEL_MAX - 11
_HASH_LENGTH = 8


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def shorten(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit``, else a prefix + ``-`` + a hash of the whole name."""
    if len(name) <= limit:
        return name
    prefix = name[: limit - _HASH_LENGTH - 1].rstrip("-.")
    return f"{prefix}-{_digest(name)}"


_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def dns_label(name: str, limit: int = DNS_LABEL_MAX) -> str:
    """``name`` as a DNS-1035 label (Service names, pod hostnames) of at most ``limit``.

    A custom resource may be named ``tango.motor`` or ``1st-motor``; neither is a valid
    Service name. Such names are rewritten (dots become ``-``, a leading digit gets an
    ``x`` in front) and, because ``a.b`` and ``a-b`` would then collide, a rewritten name
    always carries the hash of the original.
    """
    label = _NOT_LABEL.sub("-", name.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = f"x{label}"
    if label == name:
        return shorten(label, limit)
    prefix = label[: limit - _HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{_digest(name)}"


def service(owner: str, suffix: str = "") -> str:
    """A Service name (a DNS-1035 label)."""
    return dns_label(f"{owner}{suffix}")


def statefulset(owner: str, suffix: str = "") -> str:
    """A StatefulSet name: its pods' names are hostnames, so also a DNS-1035 label."""
    return dns_label(f"{owner}{suffix}", STATEFULSET_NAME_MAX)


def config_map(owner: str, suffix: str) -> str:
    """A ConfigMap name: ``owner`` + ``suffix``, shortened to a DNS subdomain."""
    return shorten(f"{owner}{suffix}", DNS_SUBDOMAIN_MAX)


def secret(owner: str, suffix: str) -> str:
    """A Secret name: ``owner`` + ``suffix``, shortened to a DNS subdomain."""
    return shorten(f"{owner}{suffix}", DNS_SUBDOMAIN_MAX)


def persistent_volume_claim(owner: str, suffix: str) -> str:
    """A PersistentVolumeClaim name: ``owner`` + ``suffix``, shortened to a DNS subdomain."""
    return shorten(f"{owner}{suffix}", DNS_SUBDOMAIN_MAX)


def network_policy(owner: str, suffix: str) -> str:
    """A NetworkPolicy name: ``owner`` + ``suffix``, shortened to a DNS subdomain."""
    return shorten(f"{owner}{suffix}", DNS_SUBDOMAIN_MAX)


def label_value(value: str) -> str:
    """A label value (at most 63 characters)."""
    return shorten(value, DNS_LABEL_MAX)
