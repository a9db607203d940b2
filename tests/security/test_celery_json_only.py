"""Celery accepts JSON only: a message in any other serialization is refused undecoded.

Redis is a trust boundary (docs/security.md): whoever can write to it can put messages on the
workers' queue. A real ``tango-operator worker`` process (the TANGO stand-in that records every
reconcile, as in the queue tests) and a real redis-server: pickle and YAML messages for the
operator's own task name, on its own queue, naming DeviceServers that exist, are refused with
Celery's "content disallowed" report — one of them a pickle that would create a file if it
were ever unpickled — and none of those DeviceServers is reconciled; the JSON message sent
after them is, so the worker did read the queue past them.
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any

from celery import Celery
from kubernetes import client

from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator import celeryconfig, crd
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.messages import QUEUE_NAME, TASK_NAME
from tango_operator.workqueue import WorkQueue
from tests.support.crs import traced_device_server
from tests.support.standin_tango import reconcile_starts
from tests.support.workers import Producer, WorkerPool, celery_messages, wait_for
from workers.app import app as worker_app

JsonDict = dict[str, Any]


class Exploit:
    """Unpickling this creates ``path``: the proof that a pickle was decoded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _reconciled_hosts(trace: Path) -> set[str]:
    """TANGO hosts the stand-in saw a reconcile for (one per DeviceServer here)."""
    return {host for _, host, _ in reconcile_starts(trace)}


def test_the_configuration_is_json_only() -> None:
    assert celeryconfig.accept_content == ["json"]
    assert celeryconfig.task_serializer == "json"
    assert celeryconfig.result_serializer == "json"
    assert celeryconfig.result_accept_content == ["json"]
    assert celeryconfig.event_serializer == "json"
    conf = worker_app.conf
    assert list(conf.accept_content) == ["json"]
    assert conf.task_serializer == "json"
    assert conf.event_serializer == "json"
    # the watcher's sender: the other producer of task messages
    sender = make_publisher("redis://127.0.0.1:1/0").app.conf
    assert list(sender.accept_content) == ["json"]
    assert sender.task_serializer == "json"


def test_a_worker_runs_json_and_refuses_pickle_and_yaml(
    kube_client: client.ApiClient, redis: RedisServer, kubeemu: KubeEmu, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    for name in ("via-pickle", "via-yaml", "via-json"):
        custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", traced_device_server(name)
        )
    pool = WorkerPool(
        kubeconfig=kubeemu.kubeconfig, redis_url=redis.url, workdir=tmp_path, concurrency=1
    )
    pool.start()
    try:
        attacker = Celery("attacker", broker=redis.url)  # may speak any serialization
        pwned = tmp_path / "pwned"
        via_pickle = Key("DeviceServer", "default", "via-pickle").encode()
        hostile: list[tuple[str, str, JsonDict]] = [
            ("pickle", via_pickle, {}),
            ("pickle", via_pickle, {"x": Exploit(pwned)}),
            ("yaml", Key("DeviceServer", "default", "via-yaml").encode(), {}),
        ]
        for serializer, member, kwargs in hostile:
            attacker.send_task(
                TASK_NAME, args=[member], kwargs=kwargs, queue=QUEUE_NAME, serializer=serializer
            )
        # what really is on the queue: kombu's envelope names the content type, and the body
        # is the pickle itself (the exploit's reduce is in it)
        with redis.client() as conn:
            raw = [json.loads(m) for m in celery_messages(conn)]
        assert sorted(m["content-type"] for m in raw) == [
            "application/x-python-serialize",
            "application/x-python-serialize",
            "application/x-yaml",
        ]
        exploit = next(m for m in raw if b"pwned" in base64.b64decode(m["body"]))
        _args, decoded_kwargs, _embed = pickle.loads(base64.b64decode(exploit["body"]))
        decoded_kwargs["x"].close()
        assert pwned.exists(), "the exploit works when it is unpickled"
        pwned.unlink()

        producer = Producer.connect(WorkQueue(redis.client()), redis.url)
        producer.enqueue(Key("DeviceServer", "default", "via-json"))
        wait_for(
            lambda: "db-via-json.example:10000" in _reconciled_hosts(pool.trace),
            timeout=30,
            what="the JSON message reconciled",
        )

        def refused() -> int:
            return pool.logs().count("Refusing to deserialize untrusted content of type")

        wait_for(lambda: refused() >= 3, timeout=10, what="three refusals in the worker log")
        logs = pool.logs()
        assert "untrusted content of type pickle (application/x-python-serialize)" in logs
        assert "untrusted content of type yaml (application/x-yaml)" in logs
        assert "The message has been ignored and discarded" in logs
    finally:
        pool.stop()

    assert not pwned.exists(), "the pickle was unpickled"
    assert _reconciled_hosts(pool.trace) == {"db-via-json.example:10000"}
    for name in ("via-pickle", "via-yaml"):
        found = custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", name
        )
        assert "status" not in found, name
        assert not found["metadata"].get("finalizers"), name
    reconciled = custom.get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "via-json"
    )
    assert reconciled["metadata"].get("finalizers")
    with redis.client() as conn:  # refused messages are dropped, not redelivered forever
        left = [json.loads(m) for m in celery_messages(conn)]
        unacked = conn.hlen("unacked")
    assert {m["content-type"] for m in left} <= {"application/json"}  # follow-ups of via-json
    assert unacked == 0
