"""Redis over TLS: every client of the operator verifies the server, with the CA it is given.

``TANGO_OPERATOR_REDIS_URL=rediss://…`` plus ``TANGO_OPERATOR_REDIS_CA_FILE`` (and, for a Redis
that asks for client certificates, ``_CERT_FILE`` / ``_KEY_FILE``) reach the watcher's work
queue client (redis-py) and its Celery sender, the workers' Celery broker (kombu) and their
work queue client, and Flower (its event consumer and its broker page), through
``tango_operator.redis_url.redis_url`` / ``redis_tls``. Checked against a real redis-server
that speaks TLS only (``--port 0 --tls-port``) with a certificate from a CA made for the test: a
DeviceServer is reconciled to Running over TLS by the real watcher and worker processes while
Flower follows; the same clients given another CA, or none (the system CAs), refuse to talk
and say why (``CERTIFICATE_VERIFY_FAILED``). kombu on its own would not: a bare ``rediss://``
URL gives it ``ssl_cert_reqs=CERT_NONE`` (it warns, and connects to anyone), which is why the
contract always adds ``ssl_cert_reqs=required``.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kubernetes import client

from devstack.redis_server import RedisServer, RedisTls
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.redis_url import RedisSettingsError, redis_tls, redis_url
from tango_operator.workqueue import WorkQueue
from tests.security.conftest import Pki, start_flower, start_watcher
from tests.support.crs import traced_device_server
from tests.support.workers import REPO, WorkerPool, wait_for
from watcher.settings import Settings

JsonDict = dict[str, Any]
PASSWORD = "tls:p@ss/wörd"
VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


@pytest.fixture
def tls_redis(tmp_path: Path, pki: Pki) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", tls=pki.redis_tls, password=PASSWORD) as server:
        yield server


def _env(server: RedisServer, ca_file: Path | None) -> dict[str, str]:
    env = {"TANGO_OPERATOR_REDIS_URL": server.url, "TANGO_OPERATOR_REDIS_PASSWORD": PASSWORD}
    if ca_file is not None:
        env["TANGO_OPERATOR_REDIS_CA_FILE"] = str(ca_file)
    return env


def _kombu_ssl(url: str) -> Any:
    """The TLS options kombu makes of ``url`` on its own (no ``broker_use_ssl``)."""
    connection = Celery("probe", broker=url).connection_for_write()
    return connection.ssl


def _celery_settings(env: dict[str, str]) -> JsonDict:
    """The workers' Celery settings as a fresh interpreter with ``env`` loads them."""
    probe = (
        "import json\n"
        "from workers.app import app\n"
        "ssl_options = app.connection_for_write().ssl\n"
        "print(json.dumps({'broker_use_ssl': app.conf.broker_use_ssl,\n"
        "                  'kombu_ssl': {k: str(v) for k, v in (ssl_options or {}).items()}}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    settings: JsonDict = json.loads(result.stdout)
    return settings


def test_tls_settings_reach_every_client() -> None:
    env = {
        "TANGO_OPERATOR_REDIS_URL": "rediss://redis.ns.svc:6380/2",
        "TANGO_OPERATOR_REDIS_PASSWORD": PASSWORD,
        "TANGO_OPERATOR_REDIS_CA_FILE": "/etc/tango-operator/redis-tls/ca.crt",
        "TANGO_OPERATOR_REDIS_CERT_FILE": "/etc/tango-operator/redis-client/tls.crt",
        "TANGO_OPERATOR_REDIS_KEY_FILE": "/etc/tango-operator/redis-client/tls.key",
    }
    expected = {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": "/etc/tango-operator/redis-tls/ca.crt",
        "ssl_certfile": "/etc/tango-operator/redis-client/tls.crt",
        "ssl_keyfile": "/etc/tango-operator/redis-client/tls.key",
    }
    assert redis_tls(env) == expected
    assert PASSWORD not in repr(Settings.from_environment(env))  # the URL is not in its repr
    # redis-py: the watcher's and the workers' work queue clients
    for url in (redis_url(env), Settings.from_environment(env).redis_url):
        kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
        assert {k: kwargs[k] for k in expected} == expected
        assert kwargs["password"] == PASSWORD
        assert redis.Redis.from_url(url).connection_pool.connection_class is redis.SSLConnection
    # kombu, as the watcher's Sender and the workers' app make their connections
    sender = make_publisher(Settings.from_environment(env).redis_url).app
    kombu_ssl = sender.connection_for_write().ssl
    assert kombu_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert {k: v for k, v in kombu_ssl.items() if k != "ssl_cert_reqs"} == {
        k: v for k, v in expected.items() if k != "ssl_cert_reqs"
    }
    settings = _celery_settings(env)
    assert settings["broker_use_ssl"] == expected  # Flower's broker page reads this
    assert settings["kombu_ssl"]["ssl_cert_reqs"] == str(ssl.CERT_REQUIRED)
    assert settings["kombu_ssl"]["ssl_ca_certs"] == expected["ssl_ca_certs"]

    # a bare rediss:// URL still verifies (with the system CAs); kombu alone would not
    bare = {"TANGO_OPERATOR_REDIS_URL": "rediss://redis.example.org:6380/0"}
    assert redis_tls(bare) == {"ssl_cert_reqs": "required"}
    assert _kombu_ssl("rediss://redis.example.org:6380/0") == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert _kombu_ssl(redis_url(bare)) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert _celery_settings(bare)["kombu_ssl"] == {"ssl_cert_reqs": str(ssl.CERT_REQUIRED)}
    # without TLS: nothing, and asking for TLS files with a plain URL is an error, not plain text
    assert redis_tls({"TANGO_OPERATOR_REDIS_URL": "redis://r:6379/0"}) is None
    assert _celery_settings({"TANGO_OPERATOR_REDIS_URL": "redis://r:6379/0"})["broker_use_ssl"] is (
        False
    )
    plain = {**env, "TANGO_OPERATOR_REDIS_URL": "redis://:hunter2@r:6379/0"}
    with pytest.raises(RedisSettingsError) as caught:
        redis_url(plain)
    assert "TANGO_OPERATOR_REDIS_CA_FILE" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_the_watcher_refuses_tls_files_with_a_plain_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watcher"],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "TANGO_OPERATOR_REDIS_URL": "redis://127.0.0.1:1/0",
            "TANGO_OPERATOR_REDIS_CA_FILE": str(tmp_path / "ca.crt"),
            "KUBECONFIG": str(tmp_path / "none"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2  # a settings error, reported as one
    assert "Traceback" not in result.stderr
    assert "TANGO_OPERATOR_REDIS_CA_FILE set" in result.stderr
    assert "TLS needs rediss://" in result.stderr


@pytest.mark.slow
def test_a_reconcile_completes_over_tls(
    kubeemu: KubeEmu,
    kube_client: client.ApiClient,
    tls_redis: RedisServer,
    pki: Pki,
    tmp_path: Path,
) -> None:
    # the server speaks TLS only: a plain-text client gets nowhere
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=tls_redis.port, password=PASSWORD).ping()
    env = _env(tls_redis, pki.ca.cert_file)
    operator_env = {**env, "KUBECONFIG": str(kubeemu.kubeconfig)}
    watcher = start_watcher(operator_env, tmp_path / "watcher.log")
    pool = WorkerPool(
        kubeconfig=kubeemu.kubeconfig,
        redis_url=tls_redis.url,
        workdir=tmp_path,
        concurrency=1,
        extra_env={k: v for k, v in env.items() if k != "TANGO_OPERATOR_REDIS_URL"},
    )
    pool.start()
    flower = start_flower(env, tmp_path / "flower.log", "admin:flower-secret")
    custom = client.CustomObjectsApi(kube_client)
    try:
        custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", traced_device_server("over-tls")
        )

        def state() -> str | None:
            found = custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, "default", "deviceservers", "over-tls"
            )
            value: str | None = (found.get("status") or {}).get("state")
            return value

        wait_for(lambda: state() == "Running", timeout=60, what="over-tls Running")
        # the watcher's work queue client, as the watcher builds it
        queue = WorkQueue(redis.Redis.from_url(Settings.from_environment(env).redis_url))
        queue.enqueue(Key("DeviceServer", "default", "over-tls"))
        # Flower: workers seen through the broker (remote control over TLS) …
        # (a broadcast with Flower's one-second inspect timeout: a busy worker may miss one)
        answers: list[tuple[int, str]] = []

        def worker_seen() -> bool:
            answers.append(flower.get("/api/workers?refresh=1"))
            status, body = answers[-1]
            return status == 200 and any(n.startswith("worker0@") for n in json.loads(body))

        wait_for(worker_seen, timeout=30, interval=1.0, what="worker0 listed by Flower")
        # … and its broker page, which connects with broker_use_ssl
        status, body = flower.get("/api/queues/length")
        assert status == 200, (body, flower.process.output())
        assert json.loads(body)["active_queues"][0]["name"] == "tango-operator"
    finally:
        flower.process.stop()
        pool.stop()
        watcher.stop()
    for log in (watcher.output(), pool.logs(), flower.process.output()):
        assert VERIFY_FAILED not in log
        assert "defaulting to insecure SSL" not in log
    assert "rediss://" in pool.logs()  # the banner: Celery's broker was the TLS URL


@pytest.mark.slow
def test_a_wrong_ca_is_refused_with_a_clear_error(
    kubeemu: KubeEmu, tls_redis: RedisServer, pki: Pki, tmp_path: Path
) -> None:
    for ca_file in (pki.stranger.cert_file, None):  # another CA; no CA file: the system's
        env = _env(tls_redis, ca_file)
        url = Settings.from_environment(env).redis_url
        key = Key("DeviceServer", "default", "x")
        with pytest.raises(redis.ConnectionError, match=VERIFY_FAILED):
            WorkQueue(redis.Redis.from_url(url)).enqueue(key)  # the watcher's queue client
        if ca_file is not None:  # (kombu takes seconds to give up: once is enough)
            sender = make_publisher(url)
            sender.app.conf.task_publish_retry = False
            with pytest.raises(Exception, match=VERIFY_FAILED):
                sender(key)  # the watcher's Celery sender
        broker = Celery("probe", broker=url).connection_for_write()  # the workers' broker
        with pytest.raises(Exception, match=VERIFY_FAILED), broker:
            broker.ensure_connection(max_retries=0)

    workdir = tmp_path / "stranger"
    workdir.mkdir()
    env = _env(tls_redis, pki.stranger.cert_file)
    pool = WorkerPool(
        kubeconfig=kubeemu.kubeconfig,
        redis_url=tls_redis.url,
        workdir=workdir,
        concurrency=1,
        extra_env={k: v for k, v in env.items() if k != "TANGO_OPERATOR_REDIS_URL"},
    )
    pool.start()
    flower = start_flower(env, tmp_path / "flower.log", "admin:flower-secret")
    try:
        wait_for(lambda: VERIFY_FAILED in pool.logs(), timeout=30, what="the worker's TLS error")
        status, _ = flower.get("/api/queues/length")
        assert status == 500
        wait_for(
            lambda: VERIFY_FAILED in flower.process.output(),
            timeout=30,
            what="Flower's TLS error",
        )
    finally:
        flower.process.kill()  # a Flower that cannot reach its broker takes seconds to stop
        pool.stop()
    logs = pool.logs()
    assert f"Cannot connect to rediss://:**@127.0.0.1:{tls_redis.port}/0" in logs
    assert "certificate verify failed" in logs
    assert PASSWORD not in logs + flower.process.output()
    with tls_redis.client() as admin:  # nothing got through
        assert admin.dbsize() == 0


def test_a_client_certificate_when_redis_asks_for_one(pki: Pki, tmp_path: Path) -> None:
    files = RedisTls(pki.server.cert_file, pki.server.key_file, pki.ca.cert_file, True)
    with RedisServer(tmp_path, tls=files, password=PASSWORD) as server:
        without = _env(server, pki.ca.cert_file)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(redis_url(without)).ping()
        env = {
            **without,
            "TANGO_OPERATOR_REDIS_CERT_FILE": str(pki.server.cert_file),
            "TANGO_OPERATOR_REDIS_KEY_FILE": str(pki.server.key_file),
        }
        assert redis.Redis.from_url(redis_url(env)).ping()
        with Celery("probe", broker=redis_url(env)).connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)
