"""Operator settings from the environment, for the workers (and the render CLI).

Read once per process from ``TANGO_OPERATOR_*`` variables (set by the Helm chart, the
demo, or a user running the workers outside a cluster) into the reconcilers' Settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from workers.reconcile.ports import Settings

HOST_MAP = "TANGO_OPERATOR_HOST_MAP"
TANGO_DB_CLEANUP = "TANGO_OPERATOR_TANGO_DB_CLEANUP"
PENDING_POLL = "TANGO_OPERATOR_PENDING_POLL_SECONDS"
WAITING_MIN = "TANGO_OPERATOR_WAITING_MIN_SECONDS"
WAITING_MAX = "TANGO_OPERATOR_WAITING_MAX_SECONDS"


class SettingsError(ValueError):
    """An environment variable holds something unusable; the message names it."""


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: must be positive")
    return value


def _host_map(environ: Mapping[str, str]) -> dict[str, str]:
    raw = environ.get(HOST_MAP, "").strip()
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{HOST_MAP}: not JSON ({exc})") from None
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
    ):
        raise SettingsError(f'{HOST_MAP}: expected {{"host:port": "reachable-host:port", ...}}')
    return decoded


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    cleanup = environ.get(TANGO_DB_CLEANUP, "Delete")
    if cleanup not in ("Delete", "Retain"):
        raise SettingsError(f"{TANGO_DB_CLEANUP}={cleanup!r}: expected Delete or Retain")
    return Settings(
        host_map=_host_map(environ),
        remove_from_tango_db_on_delete=cleanup == "Delete",
        pending_poll_seconds=_seconds(environ, PENDING_POLL, 2.0),
        waiting_min_seconds=_seconds(environ, WAITING_MIN, 1.0),
        waiting_max_seconds=_seconds(environ, WAITING_MAX, 60.0),
    )
