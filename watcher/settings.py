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

from tango_operator import environment
from tango_operator.dispatch_settings import DispatchSettings
from tango_operator.environment import SettingsError
from tango_operator.redis_url import REDIS_URL_ENV, redis_url

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where a pod finds its own namespace: the Lease's default namespace in a cluster."""

__all__ = ["Settings", "SettingsError"]


def _redis_url(environ: Mapping[str, str]) -> str:
    url = environment.text(environ, REDIS_URL_ENV, "redis://127.0.0.1:6379/0")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{REDIS_URL_ENV}={url!r}: expected redis://, rediss:// or unix://")
    return redis_url(environ)  # with the password and the TLS files; errors name variables only


def _lease_namespace(environ: Mapping[str, str]) -> str:
    configured = environment.text(environ, "TANGO_OPERATOR_LEASE_NAMESPACE")
    if configured:
        return configured
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True)
class Settings:
    """What the watcher is configured with, read from the environment (``from_environment``)."""

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
    initial_list_seconds: float = 30.0
    """How long a new leader waits for every source's first list before offering keys."""
    network_policy: bool = False
    """The workers make NetworkPolicies: watch them too (drift). Off: no list, no watch."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every watcher variable once; ``SettingsError`` names the first unusable one."""
        environ = environment.environ_or_default(environ)
        namespaces = tuple(
            n.strip()
            for n in environment.text(environ, "TANGO_OPERATOR_NAMESPACES").split(",")
            if n.strip()
        )
        lease = environment.seconds(environ, "TANGO_OPERATOR_LEASE_DURATION_SECONDS", 15)
        renew = environment.seconds(environ, "TANGO_OPERATOR_LEASE_RENEW_SECONDS", 10)
        retry = environment.seconds(environ, "TANGO_OPERATOR_LEASE_RETRY_SECONDS", 2)
        if not lease > renew > retry:
            raise SettingsError(
                "TANGO_OPERATOR_LEASE_DURATION_SECONDS > TANGO_OPERATOR_LEASE_RENEW_SECONDS > "
                f"TANGO_OPERATOR_LEASE_RETRY_SECONDS is required (got {lease} > {renew} > {retry})"
            )
        watch_timeout = (
            environment.seconds(environ, "TANGO_OPERATOR_WATCH_TIMEOUT_SECONDS", 0) or None
        )
        return cls(
            redis_url=_redis_url(environ),
            kubeconfig=environment.text(environ, "KUBECONFIG") or None,
            namespaces=namespaces,
            namespace_selector=environment.text(environ, "TANGO_OPERATOR_NAMESPACE_SELECTOR")
            or None,
            resync_seconds=environment.seconds(environ, "TANGO_OPERATOR_RESYNC_SECONDS", 300),
            watch_timeout_seconds=watch_timeout,
            inactivity_seconds=environment.seconds(
                environ, "TANGO_OPERATOR_INACTIVITY_SECONDS", 70
            ),
            lease_namespace=_lease_namespace(environ),
            lease_name=environment.text(
                environ, "TANGO_OPERATOR_LEASE_NAME", "tango-operator-watcher"
            ),
            lease_seconds=lease,
            renew_seconds=renew,
            retry_seconds=retry,
            identity=environment.text(
                environ, "TANGO_OPERATOR_IDENTITY", f"{socket.gethostname()}-{os.getpid()}"
            ),
            metrics_port=environment.port(environ, "TANGO_OPERATOR_METRICS_PORT"),
            dispatch=DispatchSettings.from_environment(environ),
            initial_list_seconds=environment.seconds(
                environ, "TANGO_OPERATOR_INITIAL_LIST_SECONDS", 30.0
            ),
            network_policy=environment.flag(environ, "TANGO_OPERATOR_NETWORK_POLICY", False),
        )
