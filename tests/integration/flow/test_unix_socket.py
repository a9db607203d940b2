"""A Redis reached over a unix socket, with a password.

The real watcher (redis-py and its Celery sender) and a real worker (kombu and redis-py) take a
DeviceServer to Running.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.redis_url import celery_url
from tests.support.crs import create_device_server
from tests.support.workers import REPO, WorkerPool, wait_for

PASSWORD = "p@ss/wörd"


def test_celery_spelling_of_unix_urls() -> None:
    assert celery_url("redis://h:6379/0") == "redis://h:6379/0"
    assert celery_url("unix:///run/redis.sock") == "redis+socket:///run/redis.sock"
    assert (
        celery_url("unix:///run/redis.sock?db=2&password=a%2Fb")
        == "redis+socket://:a%2Fb@/run/redis.sock?virtual_host=2"
    )


@pytest.fixture
def socket_redis(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", password=PASSWORD, unix_socket=True) as server:
        yield server


def test_watcher_and_worker_over_a_unix_socket(
    kubeemu: KubeEmu, kube_client: client.ApiClient, socket_redis: RedisServer, tmp_path: Path
) -> None:
    pool = WorkerPool(
        kubeconfig=kubeemu.kubeconfig,
        redis_url=socket_redis.socket_url,
        workdir=tmp_path,
        extra_env={"TANGO_OPERATOR_REDIS_PASSWORD": PASSWORD, "TANGO_OPERATOR_DISPATCH": "fair"},
    )
    pool.start()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "watcher"],
        env=pool.environment(),
        stdout=(tmp_path / "watcher.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    custom = client.CustomObjectsApi(kube_client)
    try:
        create_device_server(kube_client, "socketed")

        def running() -> bool:
            found = custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, "default", "deviceservers", "socketed"
            )
            return bool((found.get("status") or {}).get("state") == "Running")

        wait_for(running, timeout=60, what="the DeviceServer Running over the unix socket")
    finally:
        watcher.terminate()
        watcher.wait(timeout=20)
        pool.kill_all()
    assert PASSWORD not in pool.logs()
    assert PASSWORD not in (tmp_path / "watcher.log").read_text()
