"""Flower as the chart runs it.

The rendered container's command and environment (basic-auth credentials from the rendered Secret,
the Redis password from the Redis Secret) start the real ``celery flower`` against a redis-server
that requires that password. Pages, API and /metrics answer 401 without the credentials and 200 with
them; /healthcheck (the probes) stays open. A worker, which starts without task events, gets
them switched on by Flower, and its tasks appear in Flower's task list.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from kubernetes import client, config

from devstack.ports import free_port
from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.messages import TASK_NAME
from tests.chart.chart import container, env_of, find, render
from tests.support.workers import REPO, WorkerPool

pytestmark = pytest.mark.helm


def _status(url: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials is not None:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening (yet)


def _decoded(secret: dict[str, object], key: str) -> str:
    data = secret["data"]
    assert isinstance(data, dict)
    return base64.b64decode(data[key]).decode()


@dataclass(frozen=True)
class Flower:
    """Flower started from the chart's rendered container, and its broker."""

    base: str
    credentials: str
    """``user:password`` of Flower's basic auth."""
    redis_url: str
    """The broker, with the chart's Redis password in it."""


@pytest.fixture(scope="module")
def flower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """Flower started from the chart's rendered container, on a redis-server of its own."""
    tmp_path = tmp_path_factory.mktemp("flower")
    objects = render(workdir=tmp_path / "helm")
    spec = container(objects, "-flower")
    env = env_of(spec)
    auth_ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    credentials = _decoded(find(objects, "Secret", auth_ref["name"][-7:]), auth_ref["key"])
    password_ref = env["TANGO_OPERATOR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    redis_password = _decoded(find(objects, "Secret", "-redis"), password_ref["key"])

    port = free_port()
    command = [sys.executable, *spec["command"][1:]]
    assert command[1:3] == ["-m", "workers.flower"]
    command = [
        f"--port={port}" if arg.startswith("--port=") else arg for arg in command
    ]  # the pod's 0.0.0.0:5555 becomes a free loopback port
    command = ["--address=127.0.0.1" if a.startswith("--address=") else a for a in command]
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as redis:
        with redis.client() as admin:
            admin.config_set("requirepass", redis_password)
        process = subprocess.Popen(
            command,
            env={
                **os.environ,
                "TANGO_OPERATOR_REDIS_URL": redis.url,
                "TANGO_OPERATOR_REDIS_PASSWORD": redis_password,
                "FLOWER_BASIC_AUTH": credentials,
                "PYTHONPATH": str(REPO),
            },
            stdout=(tmp_path / "flower.log").open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while _status(f"{base}/healthcheck") != 200:
                assert process.poll() is None, (tmp_path / "flower.log").read_text()
                assert time.monotonic() < deadline, "Flower did not start"
                time.sleep(0.2)
            authenticated = redis.url.replace("://", f"://:{quote(redis_password, safe='')}@", 1)
            yield Flower(base, credentials, authenticated)
        finally:
            process.terminate()
            process.wait(timeout=20)
        log = (tmp_path / "flower.log").read_text()
        assert "Authentication required" not in log, "Flower could not log in to Redis"


@pytest.mark.parametrize("path", ["/", "/api/workers", "/metrics", "/tasks"])
def test_flower_wants_the_charts_credentials(flower: Flower, path: str) -> None:
    base, credentials = flower.base, flower.credentials
    user = credentials.split(":", 1)[0]
    assert _status(base + path) == 401
    assert _status(base + path, f"{user}:wrong") == 401
    assert _status(base + path, credentials) == 200


def test_healthcheck_stays_open_for_the_probes(flower: Flower) -> None:
    assert _status(f"{flower.base}/healthcheck") == 200


def _tasks(flower: Flower) -> dict[str, dict[str, object]]:
    request = urllib.request.Request(f"{flower.base}/api/tasks")
    token = base64.b64encode(flower.credentials.encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        tasks: dict[str, dict[str, object]] = json.loads(response.read())
    return tasks


def _shown(flower: Flower, resource: str, state: str) -> list[dict[str, object]]:
    return [
        task
        for task in _tasks(flower).values()
        if task.get("args") == resource and task.get("state") == state
    ]


@pytest.mark.slow
def test_flower_names_each_tasks_resource_and_fails_a_reconcile_that_leaves_it_in_error(
    flower: Flower, tmp_path: Path
) -> None:
    """Each task names its resource; one that left the resource in Error is a FAILURE.

    Task events are off in a worker until Flower switches them on.
    """
    with KubeEmu.start(tmp_path / "emu", []) as emu:
        api_client = config.new_client_from_config(config_file=str(emu.kubeconfig))
        install_crds(api_client)
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            "default",
            "deviceservers",
            {
                "apiVersion": crd.API_VERSION,
                "kind": "DeviceServer",
                "metadata": {"name": "broken"},
                "spec": {
                    "dsname": "Probe",
                    "args": "x",
                    "command": "/bin/probe",
                    "image": "registry.example/probe:1",
                    "databaseds": "tango-db",
                    "config": "{not json",
                },
            },
        )
        api_client.close()
        pool = WorkerPool(
            kubeconfig=emu.kubeconfig,
            redis_url=flower.redis_url,
            workdir=tmp_path,
            pool="threads",
        )
        pool.start()
        publisher = make_publisher(flower.redis_url, name="tango_operator_flower_test")
        try:
            absent = Key("DeviceServer", "default", "shown-in-flower")
            broken = Key("DeviceServer", "default", "broken")
            deadline = time.monotonic() + 45
            succeeded: list[dict[str, object]] = []
            while not succeeded:
                assert time.monotonic() < deadline, f"no task in Flower:\n{pool.logs()[-3000:]}"
                publisher(absent)  # until Flower has switched the worker's events on
                time.sleep(1.0)
                succeeded = _shown(flower, "DeviceServer default/shown-in-flower", "SUCCESS")
            assert succeeded[0]["name"] == TASK_NAME
            assert "DeviceServer default/shown-in-flower" in str(succeeded[0]["result"])

            publisher(broken)
            failed: list[dict[str, object]] = []
            while not failed:
                assert time.monotonic() < deadline, f"no failed task:\n{pool.logs()[-3000:]}"
                time.sleep(0.5)
                failed = _shown(flower, "DeviceServer default/broken", "FAILURE")
            exception = str(failed[0]["exception"])
            assert "ResourceInErrorState" in exception
            assert "DeviceServer default/broken is in state Error: spec.config" in exception
            assert "Traceback" not in pool.logs(), "an expected outcome is logged without one"
        finally:
            pool.stop()
