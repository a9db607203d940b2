"""TANGO_OPERATOR_REDIS_PASSWORD, the setting the chart passes from a Secret.

It becomes the password of TANGO_OPERATOR_REDIS_URL (percent-encoded), and every Redis client of the
operator — the watcher's settings, the workers' Celery config and runtime — authenticates with it
against a real redis-server that requires a password.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from devstack.redis_server import RedisServer
from tango_operator.redis_url import redis_url
from tests.support.workers import REPO
from watcher.settings import Settings, SettingsError


def _parsed(url: str) -> dict[str, Any]:
    """What redis-py makes of a URL (the connection's keyword arguments)."""
    kwargs: dict[str, Any] = redis.Redis.from_url(url).connection_pool.connection_kwargs
    return kwargs


AWKWARD = "p@ss:w/rd%#?&"
"""Every character that would break a password written into a URL by hand."""


def test_password_is_percent_encoded_into_the_url() -> None:
    env = {
        "TANGO_OPERATOR_REDIS_URL": "rediss://redis.ns.svc:6380/0?ssl_cert_reqs=required",
        "TANGO_OPERATOR_REDIS_PASSWORD": AWKWARD,
    }
    assert redis_url(env) == (
        "rediss://:p%40ss%3Aw%2Frd%25%23%3F%26@redis.ns.svc:6380/0?ssl_cert_reqs=required"
    )
    parsed = _parsed(redis_url(env))
    assert parsed["password"] == AWKWARD
    assert parsed["host"] == "redis.ns.svc"


def test_url_alone_and_username_kept() -> None:
    assert redis_url({}) == "redis://127.0.0.1:6379/0"
    assert redis_url({"TANGO_OPERATOR_REDIS_URL": "redis://r:1/2"}) == "redis://r:1/2"
    env = {
        "TANGO_OPERATOR_REDIS_URL": "redis://acl-user:old@[::1]:6379/1",
        "TANGO_OPERATOR_REDIS_PASSWORD": "new one",
    }
    assert redis_url(env) == "redis://acl-user:new%20one@[::1]:6379/1"


def test_unix_socket_gets_a_password_parameter() -> None:
    env = {
        "TANGO_OPERATOR_REDIS_URL": "unix:///run/redis.sock?db=1",
        "TANGO_OPERATOR_REDIS_PASSWORD": "a&b",
    }
    parsed = _parsed(redis_url(env))
    assert parsed["password"] == "a&b"
    assert parsed["path"] == "/run/redis.sock"


def test_watcher_error_never_shows_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(
            {"TANGO_OPERATOR_REDIS_URL": "http://x", "TANGO_OPERATOR_REDIS_PASSWORD": "hidden"}
        )
    assert "hidden" not in str(caught.value)


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        with server.client() as admin:
            admin.config_set("requirepass", AWKWARD)
        yield server


def test_every_client_authenticates(locked_redis: RedisServer) -> None:
    env = {
        "TANGO_OPERATOR_REDIS_URL": locked_redis.url,
        "TANGO_OPERATOR_REDIS_PASSWORD": AWKWARD,
    }
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(locked_redis.url).ping()
    # the watcher
    with redis.Redis.from_url(Settings.from_environment(env).redis_url) as conn:
        assert conn.ping()
    # the workers' Celery broker and their runtime's Redis client, in a fresh interpreter
    # (both read the environment at import)
    probe = (
        "from tango_operator import celeryconfig\n"
        "from workers.app import app\n"
        "from tango_operator.redis_url import redis_url\n"
        "import redis\n"
        "assert app.conf.broker_url == celeryconfig.broker_url\n"
        "with app.connection_for_write() as connection:\n"
        "    connection.ensure_connection(max_retries=1)\n"
        "assert redis.Redis.from_url(redis_url()).ping()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
