"""workers.settings: environment → Settings, with errors that name the variable."""

from __future__ import annotations

import pytest

from tango_operator.crd import ConfigMode
from workers import settings


def test_defaults() -> None:
    loaded = settings.from_environment({})
    assert loaded.host_map == {}
    assert loaded.remove_from_tango_db_on_delete is True
    assert loaded.config_mode == ConfigMode.UPDATE
    assert loaded.network_policy is False
    assert loaded.waiting_max_seconds == 60.0


def test_values() -> None:
    loaded = settings.from_environment(
        {
            settings.HOST_MAP: '{"db.ns.svc.cluster.local:10000": "127.0.0.1:20000"}',
            settings.TANGO_DB_CLEANUP: "Retain",
            settings.CONFIG_MODE: "Declarative",
            settings.NETWORK_POLICY: "True",
            settings.WAITING_MAX: "5",
        }
    )
    assert loaded.reachable("db.ns.svc.cluster.local:10000") == "127.0.0.1:20000"
    assert loaded.reachable("other:1") == "other:1"
    assert loaded.remove_from_tango_db_on_delete is False
    assert loaded.config_mode == ConfigMode.DECLARATIVE
    assert loaded.network_policy is True
    assert settings.from_environment({settings.NETWORK_POLICY: "false"}).network_policy is False
    assert loaded.waiting_max_seconds == 5.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (settings.HOST_MAP, "{"),
        (settings.HOST_MAP, '["a"]'),
        (settings.TANGO_DB_CLEANUP, "Sometimes"),
        (settings.CONFIG_MODE, "update"),
        (settings.NETWORK_POLICY, "yes"),
        (settings.PENDING_POLL, "soon"),
        (settings.WAITING_MIN, "-1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(settings.SettingsError, match=name):
        settings.from_environment({name: value})
