"""Every setting of a worker process, read from the environment in this one module.

Input: the ``TANGO_OPERATOR_*`` variables (set by the Helm chart, the demo, or a user running
the workers outside a cluster), ``KUBECONFIG`` and ``PROMETHEUS_MULTIPROC_DIR``, parsed with
the core's reader (``tango_operator.environment``). Output: the reconcilers' ``Settings``
(``from_environment``), the process wiring's ``WorkerSettings`` (``for_process``: Redis,
Kubernetes, the TANGO port, lease, dispatch, export watch, metrics), and the TANGO adapter's
timeouts (``tango_seconds``). Nothing else in ``workers`` reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tango_operator import environment
from tango_operator.crd import ConfigMode, ConfigReload
from tango_operator.dispatch_settings import DispatchSettings
from tango_operator.environment import SettingsError
from tango_operator.redis_url import redis_url

__all__ = ["Settings", "SettingsError", "WorkerSettings", "for_process", "from_environment"]

HOST_MAP = "TANGO_OPERATOR_HOST_MAP"
TANGO_DB_CLEANUP = "TANGO_OPERATOR_TANGO_DB_CLEANUP"
CONFIG_MODE = "TANGO_OPERATOR_CONFIG_MODE"
CONFIG_RELOAD = "TANGO_OPERATOR_CONFIG_RELOAD"
NETWORK_POLICY = "TANGO_OPERATOR_NETWORK_POLICY"
PENDING_POLL = "TANGO_OPERATOR_PENDING_POLL_SECONDS"
SETTLING = "TANGO_OPERATOR_SETTLING_SECONDS"
WAITING_MIN = "TANGO_OPERATOR_WAITING_MIN_SECONDS"
WAITING_MAX = "TANGO_OPERATOR_WAITING_MAX_SECONDS"
DEVICE_HEALTH = "TANGO_OPERATOR_DEVICE_HEALTH_SECONDS"
TANGO_PORT = "TANGO_OPERATOR_TANGO_PORT"
LEASE_SECONDS = "TANGO_OPERATOR_LEASE_SECONDS"
API_RETRIES = "TANGO_OPERATOR_API_RETRIES"
BACKOFF_CAP = "TANGO_OPERATOR_BACKOFF_CAP_SECONDS"
EXPORT_POLL = "TANGO_OPERATOR_EXPORT_POLL_SECONDS"
METRICS_PORT = "TANGO_OPERATOR_METRICS_PORT"
TEMPLATES = "TANGO_OPERATOR_TEMPLATES"


@dataclass(frozen=True)
class Settings:
    """What the reconcilers are configured with (``from_environment``; ``Ports.settings``)."""

    host_map: dict[str, str] = field(default_factory=dict)
    """In-cluster ``host:port`` → address reachable from the worker (running outside a cluster)."""
    remove_from_tango_db_on_delete: bool = True
    config_mode: ConfigMode = ConfigMode.UPDATE
    """How a config is written to the TANGO DB unless its DeviceServer's annotation says."""
    config_reload: ConfigReload = ConfigReload.RESTART
    """How a running server takes in a changed config unless its annotation says."""
    network_policy: bool = False
    """Each DeviceServer and DatabaseDS gets NetworkPolicies (DNS and the TANGO ports); off:
    none, and those made while it was on are deleted."""
    pending_poll_seconds: float = 2.0
    settling_seconds: float = 2.0
    """After writing children, how long a not-ready state must last before it is published."""
    waiting_min_seconds: float = 1.0
    waiting_max_seconds: float = 60.0
    device_health_seconds: float = 60.0
    """How often a Running server's devices are read (State, Status); 0: never."""

    def reachable(self, address: str) -> str:
        """The address to use for ``address`` from here (``host_map``, else unchanged)."""
        return self.host_map.get(address, address)


DEFAULT_TANGO_PORT = "workers.tango:PyTangoPort"
DEFAULT_EXPORT_POLL_SECONDS = 0.1
"""How often a pool process looks at the exports of the servers that are starting."""


def _host_map(environ: Mapping[str, str]) -> dict[str, str]:
    return environment.json_object(
        environ,
        HOST_MAP,
        lambda decoded: all(isinstance(v, str) for v in decoded.values()),
        '{"host:port": "reachable-host:port", ...}',
    )


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """The reconcilers' settings; ``SettingsError`` names the first unusable variable."""
    environ = environment.environ_or_default(environ)
    cleanup = environment.choice(environ, TANGO_DB_CLEANUP, ("Delete", "Retain"), "Delete")
    mode = environment.choice(environ, CONFIG_MODE, tuple(ConfigMode), ConfigMode.UPDATE)
    reload = environment.choice(environ, CONFIG_RELOAD, tuple(ConfigReload), ConfigReload.RESTART)
    return Settings(
        host_map=_host_map(environ),
        remove_from_tango_db_on_delete=cleanup == "Delete",
        config_mode=ConfigMode(mode),
        config_reload=ConfigReload(reload),
        network_policy=environment.flag(environ, NETWORK_POLICY, False),
        pending_poll_seconds=environment.seconds(environ, PENDING_POLL, 2.0),
        settling_seconds=environment.seconds(environ, SETTLING, 2.0),
        waiting_min_seconds=environment.seconds(environ, WAITING_MIN, 1.0),
        waiting_max_seconds=environment.seconds(environ, WAITING_MAX, 60.0),
        device_health_seconds=environment.seconds(environ, DEVICE_HEALTH, 60.0, zero_ok=True),
    )


@dataclass(frozen=True)
class WorkerSettings:
    """What one worker process is wired with (``workers.wiring``, ``workers.tasks``)."""

    redis_url: str = field(repr=False)
    """With the password in it: kept out of the repr (logs, tracebacks)."""
    kubeconfig: str | None
    """None: the in-cluster service account."""
    tango_port: str
    """``module:Class`` of the TangoPort implementation (tests plug in a stand-in)."""
    lease_seconds: float
    """TTL of a key's lease in the work queue, renewed while the reconcile runs."""
    api_retries: int
    """Tries after the first of an API request that failed transiently (``workers.api_retry``)."""
    backoff_cap_seconds: float
    """Longest per-key backoff after failed reconciles (``tango_operator.workqueue.backoff``)."""
    export_poll_seconds: float
    """0 turns the export watcher off."""
    metrics_port: int | None
    metrics_multiprocess: bool
    """``PROMETHEUS_MULTIPROC_DIR`` is set: /metrics adds up every pool process."""
    dispatch: DispatchSettings
    reconcile: Settings


def for_process(environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """Read every worker variable once; ``SettingsError`` names the first unusable one."""
    environ = environment.environ_or_default(environ)
    return WorkerSettings(
        redis_url=redis_url(environ),
        kubeconfig=environment.text(environ, "KUBECONFIG") or None,
        tango_port=environment.text(environ, TANGO_PORT, DEFAULT_TANGO_PORT),
        lease_seconds=environment.seconds(environ, LEASE_SECONDS, 30.0),
        api_retries=environment.whole_number(environ, API_RETRIES, 4),
        backoff_cap_seconds=environment.seconds(environ, BACKOFF_CAP, 60.0),
        export_poll_seconds=environment.seconds(
            environ, EXPORT_POLL, DEFAULT_EXPORT_POLL_SECONDS, zero_ok=True
        ),
        metrics_port=environment.port(environ, METRICS_PORT),
        metrics_multiprocess=bool(environment.text(environ, "PROMETHEUS_MULTIPROC_DIR")),
        dispatch=DispatchSettings.from_environment(environ),
        reconcile=from_environment(environ),
    )


def tango_seconds(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A TANGO timeout or cache TTL (``workers.tango.port``): 0 or more seconds."""
    return environment.seconds(environment.environ_or_default(environ), name, default, zero_ok=True)


def templates_directory(environ: Mapping[str, str] | None = None) -> str | None:
    """``TANGO_OPERATOR_TEMPLATES``: another templates folder (``workers.rendering``)."""
    return environment.text(environment.environ_or_default(environ), TEMPLATES) or None
