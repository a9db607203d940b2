"""watcher.settings and the sources' reconnect backoff.

Settings: environment → Settings, errors naming the variable. Pure: no server needed (they live
with the watcher's tests).
"""

from __future__ import annotations

import random

import pytest

from watcher.settings import Settings, SettingsError
from watcher.sources import Backoff


def test_defaults() -> None:
    settings = Settings.from_environment({})
    assert settings.namespaces == ()
    assert settings.namespace_selector is None
    assert settings.resync_seconds == 300
    assert settings.watch_timeout_seconds is None
    assert settings.inactivity_seconds == 70
    assert settings.lease_name == "tango-operator-watcher"
    assert (settings.lease_seconds, settings.renew_seconds, settings.retry_seconds) == (15, 10, 2)
    assert settings.metrics_port is None
    assert settings.network_policy is False
    assert settings.identity


def test_values() -> None:
    settings = Settings.from_environment(
        {
            "TANGO_OPERATOR_NAMESPACES": " a, b ,,",
            "TANGO_OPERATOR_NAMESPACE_SELECTOR": "tango=yes",
            "TANGO_OPERATOR_WATCH_TIMEOUT_SECONDS": "30",
            "TANGO_OPERATOR_LEASE_NAMESPACE": "ops",
            "TANGO_OPERATOR_METRICS_PORT": "9100",
            "TANGO_OPERATOR_REDIS_URL": "redis://redis:6379/1",
            "TANGO_OPERATOR_NETWORK_POLICY": "true",
        }
    )
    assert settings.namespaces == ("a", "b")
    assert settings.namespace_selector == "tango=yes"
    assert settings.watch_timeout_seconds == 30
    assert settings.lease_namespace == "ops"
    assert settings.metrics_port == 9100
    assert settings.redis_url == "redis://redis:6379/1"
    assert settings.network_policy is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TANGO_OPERATOR_RESYNC_SECONDS", "soon"),
        ("TANGO_OPERATOR_INACTIVITY_SECONDS", "-1"),
        ("TANGO_OPERATOR_WATCH_TIMEOUT_SECONDS", "0"),
        ("TANGO_OPERATOR_METRICS_PORT", "http"),
        ("TANGO_OPERATOR_METRICS_PORT", "70000"),
        ("TANGO_OPERATOR_REDIS_URL", "localhost:6379"),
        ("TANGO_OPERATOR_LEASE_RENEW_SECONDS", "20"),
        ("TANGO_OPERATOR_NETWORK_POLICY", "1"),
    ],
)
def test_errors_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_environment({variable: value})


def test_backoff_doubles_to_the_cap_and_resets_after_a_healthy_period() -> None:
    now = [0.0]
    backoff = Backoff(rng=random.Random(1), clock=lambda: now[0])
    waits = []
    for _ in range(8):
        waits.append(backoff.next())
        now[0] += 1
    assert 0.8 <= waits[0] < 1.6
    assert 1.6 <= waits[1] < 3.2
    assert all(wait <= 30 for wait in waits)
    assert waits[-1] == 30, "capped"
    now[0] += 121
    assert backoff.next() < 1.6, "two healthy minutes reset it"
