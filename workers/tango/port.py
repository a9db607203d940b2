"""``PyTangoPort``: the operator's TangoPort over PyTango and dsconfig.

Loaded by ``workers.wiring`` (``TANGO_OPERATOR_TANGO_PORT``, default
``workers.tango:PyTangoPort``) once per worker process, after the fork. Creating it makes
no connection; PyTango objects appear on first use (:mod:`workers.tango.connections`).

Settings (constructor arguments, defaulting to the environment, read by ``workers.settings``):

``TANGO_OPERATOR_TANGO_TIMEOUT``         seconds per probe call (PyTango timeout, TCP
                                         connect; the wall-clock deadline is +0.5 s): 1.0
``TANGO_OPERATOR_TANGO_CONFIG_TIMEOUT``  seconds per DB call while applying a config: 5.0
``TANGO_OPERATOR_TANGO_CACHE_TTL``       seconds probe answers are reused; 0 disables: 1.5
``TANGO_OPERATOR_TANGO_NEGATIVE_TTL``    seconds "not ready"/"not exported" answers are
                                         reused (a dependent woken because its dependency
                                         just started must not see a stale "no"): 0.25
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from tango_operator.crd import ConfigMode
from workers import settings
from workers.reconcile.ports import (
    ConfigResult,
    DeviceHealth,
    Probe,
    TangoUnavailableError,
)
from workers.tango import config
from workers.tango.cache import TTLCache
from workers.tango.calls import BoundedCaller, OmniRunner
from workers.tango.connections import DATABASE_DEVICE, Connections, split_host, tcp_connect
from workers.tango.probes import UNKNOWN, Exported, Probes

JsonDict = dict[str, Any]

TIMEOUT = "TANGO_OPERATOR_TANGO_TIMEOUT"
CONFIG_TIMEOUT = "TANGO_OPERATOR_TANGO_CONFIG_TIMEOUT"
CACHE_TTL = "TANGO_OPERATOR_TANGO_CACHE_TTL"
NEGATIVE_TTL = "TANGO_OPERATOR_TANGO_NEGATIVE_TTL"


def _positive(answer: Probe | Exported) -> bool:
    if isinstance(answer, Probe):
        return answer.ok
    return answer.exported and not answer.error


class PyTangoPort:
    """TangoPort against real TANGO DBs and devices (see docs/tango.md).

    ``apply_config`` raises ``ConfigConflictError`` (a device or alias of another server
    instance), ``TangoUnavailableError`` (DB unreachable) or ``ValueError`` (refused).
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        config_timeout: float | None = None,
        cache_ttl: float | None = None,
        negative_ttl: float | None = None,
        cache_size: int = 4096,
        database_device: str = DATABASE_DEVICE,
    ) -> None:
        self.timeout = settings.tango_seconds(TIMEOUT, 1.0) if timeout is None else timeout
        self.config_timeout = (
            settings.tango_seconds(CONFIG_TIMEOUT, 5.0)
            if config_timeout is None
            else config_timeout
        )
        ttl = settings.tango_seconds(CACHE_TTL, 1.5) if cache_ttl is None else cache_ttl
        short = settings.tango_seconds(NEGATIVE_TTL, 0.25) if negative_ttl is None else negative_ttl
        self.connections = Connections(
            probe_timeout=self.timeout,
            config_timeout=self.config_timeout,
            database_device=database_device,
        )
        self.probes = Probes(self.connections, BoundedCaller(), self.timeout)
        self.omni = OmniRunner()
        self.cache: TTLCache[Probe | Exported] = TTLCache(
            ttl,
            max_entries=cache_size,
            ttl_of=lambda answer: ttl if _positive(answer) else short,
        )

    # --- probes -------------------------------------------------------------------------------
    def _cached_probe(self, key: Hashable, compute: Any) -> Probe:
        answer = self.cache.get_or_compute(key, compute)
        assert isinstance(answer, Probe)
        return answer

    def database_alive(self, tango_host: str) -> Probe:
        """Whether the TANGO DB at ``tango_host`` answers (cached for the probe TTL)."""
        return self._cached_probe(
            ("alive", tango_host), lambda: self.probes.database_alive(tango_host)
        )

    def device_ready(self, tango_host: str, device: str) -> Probe:
        """Whether ``device`` is exported and answers a ping (cached for the probe TTL)."""
        return self._cached_probe(
            ("ready", tango_host, device.lower()),
            lambda: self.probes.device_ready(tango_host, device),
        )

    def endpoint_reachable(self, host: str, port: int) -> Probe:
        """Whether a TCP connection to ``host:port`` opens (not cached)."""
        return self.probes.endpoint_reachable(host, port)

    def unexported_devices(self, tango_host: str, devices: tuple[str, ...]) -> list[str]:
        """Return the subset of ``devices`` not exported in the DB at ``tango_host``.

        Raises TangoUnavailableError when the DB does not answer.
        """
        missing: list[str] = []
        for device in devices:
            record = self._exported(tango_host, device)
            if record.error:
                raise TangoUnavailableError(f"TANGO DB {tango_host}: {record.error}")
            if not record.exported:
                missing.append(device)
        return missing

    def device_health(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[DeviceHealth]:
        """Each device's exported flag, State and Status (not cached: read at a low rate).

        The exported flags come from the probe cache, which the export check of the same
        reconcile has just filled. Raises TangoUnavailableError when the DB does not answer.
        """
        health: list[DeviceHealth] = []
        for device in devices:
            record = self._exported(tango_host, device)
            if record.error:
                raise TangoUnavailableError(f"TANGO DB {tango_host}: {record.error}")
            if record.exported:
                health.append(self.probes.read_state(tango_host, server_instance, device))
            else:
                why = record.refused or ("not exported" if record.defined else "not defined")
                health.append(DeviceHealth(device, False, UNKNOWN, why))
        return health

    def _exported(self, tango_host: str, device: str) -> Exported:
        record = self.cache.get_or_compute(
            ("exported", tango_host, device.lower()),
            lambda: self.probes.exported(tango_host, device),
        )
        assert isinstance(record, Exported)
        return record

    # --- configuration ------------------------------------------------------------------------
    def _database(self, tango_host: str) -> Any:
        host, port = split_host(tango_host)
        refused = tcp_connect(host, port, self.timeout)
        if refused:
            raise TangoUnavailableError(f"TANGO DB {tango_host}: {refused}")
        try:
            return self.connections.database(tango_host)
        except ValueError:
            raise
        except Exception as exc:
            raise TangoUnavailableError(f"TANGO DB {tango_host}: {exc}") from exc

    def _forget(self, tango_host: str) -> None:
        self.cache.invalidate(lambda key: isinstance(key, tuple) and key[1] == tango_host)

    def apply_config(
        self, tango_host: str, server_instance: str, document: JsonDict, *, mode: ConfigMode
    ) -> ConfigResult:
        """Write ``document`` for ``server_instance`` to the DB at ``tango_host`` (dsconfig).

        In ``mode`` (``workers.tango.config``). The cached answers for that TANGO host are
        dropped afterwards.
        """
        try:
            changed = self.omni.run(
                lambda: config.apply(
                    self._database(tango_host),
                    server_instance,
                    document,
                    mode=mode,
                    timeout=self.config_timeout,
                )
            )
        except config.DatabaseUnreachableError as exc:
            raise TangoUnavailableError(f"TANGO DB {tango_host}: {exc}") from exc
        finally:
            self._forget(tango_host)
        return ConfigResult(changed=changed)

    def init_devices(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[str]:
        """Send ``Init`` to each device, with the config timeout; ``device: why`` per failure.

        The calls go under one key of the bounded caller for the server instance (one
        process): once one device hangs, the others fail at once.
        """
        failures: list[str] = []
        for device in devices:
            reason = self.probes.init_device(
                tango_host, server_instance, device, timeout=self.config_timeout
            )
            if reason:
                failures.append(f"{device}: {reason}")
        return failures

    def remove_server(self, tango_host: str, server_instance: str) -> None:
        """Delete ``server_instance`` from the DB at ``tango_host``; drop its cached answers."""
        try:
            self.omni.run(lambda: config.remove(self._database(tango_host), server_instance))
        except config.DatabaseUnreachableError as exc:
            raise TangoUnavailableError(f"TANGO DB {tango_host}: {exc}") from exc
        finally:
            self._forget(tango_host)
