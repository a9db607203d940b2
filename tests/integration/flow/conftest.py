"""Fixtures of the end-to-end queue tests.

Kubeemu with the CRDs, a real redis-server, real Celery worker processes, and a producer standing in
for the watcher where needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator.workqueue import WorkQueue
from tests.support.workers import Producer, WorkerPool


@pytest.fixture
def queue(redis: RedisServer) -> WorkQueue:
    return WorkQueue(redis.client(), lease_seconds=3)


@pytest.fixture
def producer(queue: WorkQueue, redis: RedisServer) -> Producer:
    return Producer.connect(queue, redis.url)


@pytest.fixture
def pool(
    kubeemu: KubeEmu, redis: RedisServer, tmp_path: Path, kube_client: client.ApiClient
) -> Iterator[WorkerPool]:
    workers = WorkerPool(
        kubeconfig=kubeemu.kubeconfig,
        redis_url=redis.url,
        workdir=tmp_path,
        extra_env={"TANGO_OPERATOR_LEASE_SECONDS": "3"},
    )
    try:
        yield workers
    finally:
        workers.kill_all()
