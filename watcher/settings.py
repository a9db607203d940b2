"""Watcher settings from the environment (set by the Helm chart or the demo).

``Settings.from_environment`` reads the ``TANGO_OPERATOR_*`` variables (and ``KUBECONFIG``)
once at start-up; ``watcher.main`` hands the frozen result to every part. A value that
cannot be used raises ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workers.contract import RedisSettingsError, redis_url
from workers.queue.fair import DispatchSettings, DispatchSettingsError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where a pod finds its own namespace: the Lease's default namespace in a cluster."""


class SettingsError(ValueError):
    """An environment variable holds something unusable; the message names it."""


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r}: must be a positive number of seconds")
    return value


def _port(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r}: expected a TCP port (1-65535)")
    return int(raw)


def _redis_url(environ: Mapping[str, str]) -> str:
    url = environ.get("TANGO_OPERATOR_REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"TANGO_OPERATOR_REDIS_URL={url!r}: expected redis://, rediss:// or unix://"
        )
    try:
        return redis_url(environ)  # with TANGO_OPERATOR_REDIS_PASSWORD and the TLS files
    except RedisSettingsError as exc:  # names the variables, never the password
        raise SettingsError(str(exc)) from None


def _lease_namespace(environ: Mapping[str, str]) -> str:
    configured = environ.get("TANGO_OPERATOR_LEASE_NAMESPACE", "").strip()
    if configured:
        return configured
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _dispatch(environ: Mapping[str, str]) -> DispatchSettings:
    try:
        return DispatchSettings.from_environment(environ)
    except DispatchSettingsError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(repr=False)
    """With the password in it: kept out of the dataclass's repr (logs, tracebacks)."""
    kubeconfig: str | None
    """None: the in-cluster service account."""
    namespaces: tuple[str, ...]
    """Empty: all namespaces."""
    namespace_selector: str | None
    """A label selector on Namespaces: only CRs in matching namespaces are reconciled."""
    resync_seconds: float
    watch_timeout_seconds: float | None
    """Server-side ``timeoutSeconds`` of each watch; None: random in [300, 600] per watch."""
    inactivity_seconds: float
    lease_namespace: str
    lease_name: str
    lease_seconds: float
    renew_seconds: float
    retry_seconds: float
    identity: str
    metrics_port: int | None
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        namespaces = tuple(
            n.strip() for n in environ.get("TANGO_OPERATOR_NAMESPACES", "").split(",") if n.strip()
        )
        lease = _number(environ, "TANGO_OPERATOR_LEASE_DURATION_SECONDS", 15)
        renew = _number(environ, "TANGO_OPERATOR_LEASE_RENEW_SECONDS", 10)
        retry = _number(environ, "TANGO_OPERATOR_LEASE_RETRY_SECONDS", 2)
        if not lease > renew > retry:
            raise SettingsError(
                "TANGO_OPERATOR_LEASE_DURATION_SECONDS > TANGO_OPERATOR_LEASE_RENEW_SECONDS > "
                f"TANGO_OPERATOR_LEASE_RETRY_SECONDS is required (got {lease} > {renew} > {retry})"
            )
        watch_timeout = _number(environ, "TANGO_OPERATOR_WATCH_TIMEOUT_SECONDS", 0) or None
        return cls(
            redis_url=_redis_url(environ),
            kubeconfig=environ.get("KUBECONFIG") or None,
            namespaces=namespaces,
            namespace_selector=environ.get("TANGO_OPERATOR_NAMESPACE_SELECTOR") or None,
            resync_seconds=_number(environ, "TANGO_OPERATOR_RESYNC_SECONDS", 300),
            watch_timeout_seconds=watch_timeout,
            inactivity_seconds=_number(environ, "TANGO_OPERATOR_INACTIVITY_SECONDS", 70),
            lease_namespace=_lease_namespace(environ),
            lease_name=environ.get("TANGO_OPERATOR_LEASE_NAME", "").strip()
            or "tango-operator-watcher",
            lease_seconds=lease,
            renew_seconds=renew,
            retry_seconds=retry,
            identity=environ.get("TANGO_OPERATOR_IDENTITY")
            or f"{socket.gethostname()}-{os.getpid()}",
            metrics_port=_port(environ, "TANGO_OPERATOR_METRICS_PORT"),
            dispatch=_dispatch(environ),
        )
