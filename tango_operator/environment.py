"""The one reader of the operator's environment variables.

Each process reads its ``TANGO_OPERATOR_*`` variables in one settings module of its own —
``watcher.settings`` for the watcher, ``workers.settings`` for a worker — and both parse
values with these functions, so a bad value is reported the same way everywhere: a
``SettingsError`` whose message names the variable and what was expected (never the value
of a secret: callers do not pass secrets through here). The core's own readers
(``tango_operator.redis_url``, ``tango_operator.dispatch_settings``) use them
too. Input: a mapping (``os.environ`` by default); output: typed values.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

Environ = Mapping[str, str]


class SettingsError(ValueError):
    """An environment variable holds something unusable; the message names it."""


def environ_or_default(environ: Environ | None) -> Environ:
    """``environ``, or the process's environment when None."""
    return os.environ if environ is None else environ


def text(environ: Environ, name: str, default: str = "") -> str:
    """The stripped value of ``name``, or ``default`` when unset or blank."""
    return environ.get(name, "").strip() or default


def seconds(environ: Environ, name: str, default: float, *, zero_ok: bool = False) -> float:
    """A duration in seconds: positive (or also 0 with ``zero_ok``); ``default`` when unset."""
    raw = text(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if math.isnan(value) or value < 0 or (value == 0 and not zero_ok):
        least = "0 or more" if zero_ok else "positive"
        raise SettingsError(f"{name}={raw!r}: must be a {least} number of seconds")
    return value


def whole_number(environ: Environ, name: str, default: int, *, minimum: int = 0) -> int:
    """An integer of at least ``minimum``; ``default`` when unset."""
    raw = text(environ, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a whole number, {minimum} or more")
    return value


def port(environ: Environ, name: str) -> int | None:
    """A TCP port, or None when unset."""
    raw = text(environ, name)
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r}: expected a TCP port (1-65535)")
    return int(raw)


def choice(environ: Environ, name: str, options: tuple[str, ...], default: str) -> str:
    """One of ``options``; ``default`` when unset."""
    value = text(environ, name, default)
    if value not in options:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(options)}")
    return value


def flag(environ: Environ, name: str, default: bool) -> bool:
    """``true`` or ``false`` (in any case); ``default`` when unset."""
    raw = text(environ, name)
    if not raw:
        return default
    if raw.lower() not in ("true", "false"):
        raise SettingsError(f"{name}={raw!r}: expected true or false")
    return raw.lower() == "true"


def json_object(
    environ: Environ, name: str, valid: Callable[[dict[str, Any]], bool], expected: str
) -> dict[str, Any]:
    """A JSON object accepted by ``valid`` (``expected`` describes its shape); {} when unset."""
    raw = text(environ, name)
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: not JSON ({exc})") from None
    if not isinstance(decoded, dict) or not valid(decoded):
        raise SettingsError(f"{name}: expected {expected}")
    return decoded
