"""Fixtures of the watcher tests.

Kubeemu with the CRDs, a real redis-server per test, and the watcher either in-process
(``start_watcher``: its producer threads, keys recorded) or as ``python -m watcher`` subprocesses
(``watcher_process``), whose Celery messages are read back from the Redis list the workers consume
(``sent_keys``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis as redis_py
from kubernetes import client

from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator.keys import Key
from tango_operator.messages import TASK_NAME
from tango_operator.workqueue import EnqueueResult, WorkQueue
from tango_operator.workqueue.fair import AddResult
from tests.support.crs import create_device_server
from tests.support.workers import REPO, celery_messages
from watcher.kube import Kube
from watcher.main import Watcher
from watcher.settings import Settings

JsonDict = dict[str, Any]


class Recording(Watcher):
    """A Watcher that records every key it offers to the queue and every key it sends.

    ``send`` records too unless a real sender is given.
    """

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        queue: WorkQueue,
        send: Callable[[Key], None] | None = None,
    ) -> None:
        self.offered: list[Key] = []
        self.sent: list[Key] = []
        self.results: list[EnqueueResult | AddResult | None] = []
        self._send_on = send
        super().__init__(settings, kube, queue, self._record_send)

    def _record_send(self, key: Key) -> None:
        self.sent.append(key)
        if self._send_on is not None:
            self._send_on(key)

    def enqueue(
        self, key: Key, *, weak: bool = False, front: bool = False
    ) -> EnqueueResult | AddResult | None:
        producing = self.producing()
        result = super().enqueue(key, weak=weak, front=front)
        # answer first, key last: a test that sees the key offered also sees its answer
        # (and the message, if one was sent)
        self.results.append(result)
        if producing:
            self.offered.append(key)
        return result


StartWatcher = Callable[..., Recording]


@pytest.fixture
def start_watcher(kubeemu: KubeEmu, redis: RedisServer) -> Iterator[StartWatcher]:
    """``start_watcher(env=…, send=…, kubeconfig=…)``.

    A leading in-process watcher with its own API client (made as ``python -m watcher`` makes it),
    stopped afterwards.
    """
    running: list[tuple[Recording, list[threading.Thread]]] = []

    def start(
        env: dict[str, str] | None = None,
        send: Callable[[Key], None] | None = None,
        kubeconfig: Path | None = None,
    ) -> Recording:
        settings = Settings.from_environment(
            {
                "KUBECONFIG": str(kubeconfig or kubeemu.kubeconfig),
                "TANGO_OPERATOR_RESYNC_SECONDS": "3600",
                "TANGO_OPERATOR_INACTIVITY_SECONDS": "5",
                "TANGO_OPERATOR_INITIAL_LIST_SECONDS": "2",
                # these tests read WorkQueue.enqueue's answers; fair dispatch has its own
                "TANGO_OPERATOR_DISPATCH": "fifo",
                **(env or {}),
            }
        )
        kube = Kube.connect(settings.kubeconfig)
        watcher = Recording(settings, kube, WorkQueue(redis.client()), send)
        running.append((watcher, watcher.lead(threading.Event())))
        # what a watcher offers from here on comes from events: the start-up resync is done
        assert watcher.listed.wait(30), "the watcher's sources never listed"
        return watcher

    yield start
    for watcher, threads in running:
        watcher.stop_producing()
        for thread in threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), f"{thread.name} outlived stop_producing"
        watcher.kube.close()


WatcherProcess = Callable[..., subprocess.Popen[bytes]]


# the Lease of ``watcher_process`` unless a test passes its own
WATCHER_LEASE_SECONDS = 3
WATCHER_RENEW_SECONDS = 2
WATCHER_RETRY_SECONDS = 0.5


@pytest.fixture
def watcher_process(
    kubeemu: KubeEmu, redis: RedisServer, tmp_path: Path
) -> Iterator[WatcherProcess]:
    """``watcher_process(identity, **env)``: ``python -m watcher`` with a 3 s Lease."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(identity: str, **env: str) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "KUBECONFIG": str(kubeemu.kubeconfig),
            "TANGO_OPERATOR_REDIS_URL": redis.url,
            "TANGO_OPERATOR_IDENTITY": identity,
            "TANGO_OPERATOR_LEASE_NAMESPACE": "default",
            "TANGO_OPERATOR_LEASE_DURATION_SECONDS": str(WATCHER_LEASE_SECONDS),
            "TANGO_OPERATOR_LEASE_RENEW_SECONDS": str(WATCHER_RENEW_SECONDS),
            "TANGO_OPERATOR_LEASE_RETRY_SECONDS": str(WATCHER_RETRY_SECONDS),
            "PYTHONPATH": str(REPO),
            **env,
        }
        log = (tmp_path / f"watcher-{identity}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# --- reading what the watcher produced ----------------------------------------------------


def sent_keys(server: RedisServer) -> list[Key]:
    """The keys of the Celery messages waiting in the workers' queue, oldest first.

    kombu's Redis transport LPUSHes each message (JSON with a base64 body holding
    ``[args, kwargs, embed]``) onto a list per priority named after the queue; urgent
    messages come first, as a worker would take them.
    """
    connection = server.client()
    try:
        raw = celery_messages(connection)
    finally:
        connection.close()
    keys = []
    for payload in raw:
        message = json.loads(payload)
        assert message["headers"]["task"] == TASK_NAME
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        keys.append(Key.decode(args[0]))
    return keys


def queued_members(server: RedisServer) -> set[str]:
    connection: redis_py.Redis = server.client()
    try:
        members = cast(list[bytes], connection.zrange("tango-operator:queued", 0, -1))
    finally:
        connection.close()
    return {m.decode() for m in members}


def lease_holder(api_client: client.ApiClient) -> str | None:
    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
            "tango-operator-watcher", "default"
        )
    except client.ApiException:
        return None
    holder: str | None = lease.spec.holder_identity
    return holder


# --- objects --------------------------------------------------------------------------------


def create_ds(api_client: client.ApiClient, name: str, namespace: str = "default") -> JsonDict:
    return create_device_server(api_client, name, namespace)


def ds_key(name: str, namespace: str = "default") -> Key:
    return Key("DeviceServer", namespace, name)
