"""No secret value reaches a log, a status, an Event or Redis.

The whole local stack (``devstack.stack.LocalStack``: kubeemu, redis-server, the watcher, two
supervised workers with the PyTango side, Flower, the local kubelet running PyTango's
DataBaseds and a real device server) runs with every kind of secret the operator handles:

- the Redis password (``TANGO_OPERATOR_REDIS_PASSWORD``; Redis requires it), with characters
  that must be percent-encoded in a URL;
- Flower's basic-auth password (``FLOWER_BASIC_AUTH``), used by a client, and a wrong one;
- the MariaDB passwords of the credentials Secret the operator generates for a DatabaseDS;
- a user Secret a DeviceServer reads through ``env[].valueFrom.secretKeyRef``.

It is driven to Running, then Redis is restarted (every client goes through its error and
reconnect paths, where URLs get printed), and the stack reconciles again. Then every log file
under the stack's directory (each process's log, the kubelet's pod logs, kubeemu's log,
redis-server's log), every custom resource, Event and child object, and every key and value in
Redis are searched for each secret — as is, base64-encoded, and URL-encoded.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import tango
from kubernetes import client

from devstack.stack import LocalStack, StackOptions, cluster_tango_host
from tango_operator import crd, names
from tests.support.workers import wait_for

JsonDict = dict[str, Any]
NAMESPACE = "vault"
DATABASEDS = "tango-db"
REDIS_PASSWORD = f"redis-{secrets.token_hex(8)}:@/%+ #?"
USER_SECRET = f"user-{secrets.token_hex(8)}"

SERVER_SCRIPT = '''\
import os

from tango.server import Device, attribute, run


class Keeper(Device):
    """Holds a secret from its environment and only says how long it is."""

    @attribute(dtype=int)
    def secret_length(self):
        return len(os.environ["API_TOKEN"])


if __name__ == "__main__":
    run((Keeper,))
'''


def forms(value: str) -> set[str]:
    """What a leak of ``value`` could look like in a text."""
    raw = value.encode()
    return {
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        quote(value, safe=""),
        quote_plus(value),
    }


def leaks(text: str, secret_values: dict[str, str]) -> list[str]:
    return [
        f"{what} ({form!r})"
        for what, value in secret_values.items()
        for form in forms(value)
        if form in text
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("vault-stack")
    local = LocalStack(
        StackOptions(
            workdir=workdir,
            databaseds=((NAMESPACE, DATABASEDS),),
            workers=2,
            flower=True,
            redis_password=REDIS_PASSWORD,
            log_level="DEBUG",  # everything INFO logs, and more
        )
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _flower_get(base: str, path: str, credentials: str) -> int:
    request = urllib.request.Request(base + path)
    token = base64.b64encode(credentials.encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _state(custom: client.CustomObjectsApi, plural: str, name: str) -> str | None:
    found = custom.get_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, plural, name)
    state: str | None = (found.get("status") or {}).get("state")
    return state


def _wait_running(stack: LocalStack, custom: client.CustomObjectsApi, timeout: float) -> None:
    def running() -> bool:
        assert not stack.check(), f"stack processes died: {stack.check()}; see {stack.logs}"
        return (
            _state(custom, "databaseds", DATABASEDS) == "Running"
            and _state(custom, "deviceservers", "keeper") == "Running"
        )

    wait_for(running, timeout=timeout, interval=0.2, what="the DatabaseDS and keeper Running")


def _cluster_text(api_client: client.ApiClient) -> str:
    """Everything a user without access to Secrets can read about the operator's work."""
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    found: list[Any] = [
        custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "deviceservers"),
        custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "databaseds"),
        core.list_event_for_all_namespaces(),
        core.list_config_map_for_all_namespaces(),
        core.list_service_for_all_namespaces(),
        core.list_pod_for_all_namespaces(),
        apps.list_stateful_set_for_all_namespaces(),
    ]
    return json.dumps([api_client.sanitize_for_serialization(item) for item in found])


def _redis_text(stack: LocalStack) -> str:
    assert stack.redis is not None
    parts = []
    with stack.redis.client() as conn:
        for key in conn.scan_iter(count=1000):
            kind = conn.type(key).decode()
            value: Any
            if kind == "string":
                value = conn.get(key)
            elif kind == "list":
                value = conn.lrange(key, 0, -1)
            elif kind == "hash":
                value = conn.hgetall(key)
            elif kind == "set":
                value = conn.smembers(key)
            elif kind == "zset":
                value = conn.zrange(key, 0, -1)
            else:
                value = kind
            parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


@pytest.mark.slow
def test_no_secret_reaches_a_log_a_status_an_event_or_redis(stack: LocalStack) -> None:
    assert stack.api_client is not None
    assert stack.flower_credentials is not None
    core = client.CoreV1Api(stack.api_client)
    custom = client.CustomObjectsApi(stack.api_client)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_namespaced_secret(
        NAMESPACE,
        {"metadata": {"name": "keeper-token"}, "stringData": {"token": USER_SECRET}},
    )
    custom.create_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        NAMESPACE,
        "databaseds",
        {"apiVersion": crd.API_VERSION, "kind": "DatabaseDS", "metadata": {"name": DATABASEDS}},
    )
    custom.create_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        NAMESPACE,
        "deviceservers",
        {
            "apiVersion": crd.API_VERSION,
            "kind": "DeviceServer",
            "metadata": {"name": "keeper"},
            "spec": {
                "dsname": "Keeper",
                "args": "keeper",
                "image": "registry.example/keeper:1",
                "databaseds": DATABASEDS,
                "script": SERVER_SCRIPT,
                "config": json.dumps(
                    {"servers": {"Keeper": {"keeper": {"Keeper": {"vault/keeper/1": {}}}}}}
                ),
                "env": [
                    {
                        "name": "API_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "keeper-token", "key": "token"}},
                    }
                ],
            },
        },
    )
    _wait_running(stack, custom, timeout=120)

    generated = core.read_namespaced_secret(
        names.secret(DATABASEDS, "-tangodb-credentials"), NAMESPACE
    )
    mariadb = {k: base64.b64decode(v).decode() for k, v in (generated.data or {}).items()}
    assert set(mariadb) == {"MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}
    user, flower_password = stack.flower_credentials
    secret_values = {
        "Redis password": REDIS_PASSWORD,
        "Flower password": flower_password,
        "Flower basic-auth": f"{user}:{flower_password}",
        **{f"generated {key}": value for key, value in mariadb.items()},
        "user Secret": USER_SECRET,
    }
    assert all(len(value) >= 16 for value in secret_values.values())

    # the device server really holds the user's secret (so it was there to leak)
    tango_host = stack.host_map[cluster_tango_host(DATABASEDS, NAMESPACE)]
    keeper = tango.DeviceProxy(f"tango://{tango_host}/vault/keeper/1")
    assert keeper.read_attribute("secret_length").value == len(USER_SECRET)
    keeper_log = next((stack.workdir / "kubelet" / "logs").glob(f"{NAMESPACE}_keeper-*.log"))
    # Flower, with its credentials and with a wrong password
    flower = next(e.url for e in stack.endpoints if e.name == "Flower").rstrip("/")
    assert _flower_get(flower, "/api/workers?refresh=1", f"{user}:{flower_password}") == 200
    assert _flower_get(flower, "/api/tasks", f"{user}:{flower_password}") == 200
    assert _flower_get(flower, "/api/workers", f"{user}:{flower_password}x") == 401

    # Redis goes away and comes back: every client's error and reconnect paths run
    assert stack.redis is not None
    stack.redis.stop()
    time.sleep(3)
    stack.redis.restart()
    custom.patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        NAMESPACE,
        "deviceservers",
        "keeper",
        {"metadata": {"labels": {"touched": "after-restart"}}},
    )
    wait_for(
        lambda: "Cannot connect to redis://:**@" in _read(stack.logs / "worker0.log"),
        timeout=60,  # logged at once when it happens; the bound only allows for a loaded machine
        what="the workers' reconnect message",
    )
    _wait_running(stack, custom, timeout=60)
    assert _flower_get(flower, "/api/workers?refresh=1", f"{user}:{flower_password}") == 200

    files = sorted(p for p in stack.workdir.rglob("*.log") if p.is_file())
    scanned = {str(p.relative_to(stack.workdir)) for p in files}
    for expected in (
        "logs/watcher.log",
        "logs/worker0.log",
        "logs/worker1.log",
        "logs/flower.log",
        "kubeemu/kubeemu.log",
        "redis/redis.log",
        f"kubelet/logs/{keeper_log.name}",
    ):
        assert expected in scanned, (expected, scanned)
    assert any(name.startswith(f"kubelet/logs/{NAMESPACE}_{DATABASEDS}") for name in scanned)
    found = {str(path): leaks(_read(path), secret_values) for path in files}
    found["the cluster (CRs, Events, children, pods)"] = leaks(
        _cluster_text(stack.api_client), secret_values
    )
    found["Redis"] = leaks(_redis_text(stack), secret_values)
    assert {where: what for where, what in found.items() if what} == {}
    # and the scan would have seen them: the logs do carry what surrounds them
    worker_log = _read(stack.logs / "worker0.log")
    assert "redis://:**@127.0.0.1" in worker_log  # Celery's banner, password masked
    assert "Broker: redis://:**@127.0.0.1" in _read(stack.logs / "flower.log")


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
