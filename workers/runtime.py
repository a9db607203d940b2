"""The per-process wiring of a worker: Redis, the Kubernetes client, the TANGO port.

Built lazily on the first task in each Celery child process (never in the parent before it
forks, so no connection is shared across processes) from the environment:
``TANGO_OPERATOR_REDIS_URL`` (and ``TANGO_OPERATOR_REDIS_PASSWORD``), ``KUBECONFIG`` (else the
in-cluster service account), and ``TANGO_OPERATOR_TANGO_PORT`` — ``module:Class`` of the
TangoPort implementation, by default the PyTango one in ``workers.tango``; tests plug in a
stand-in the same way.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from kubernetes import client, config
from redis import Redis

from workers import settings
from workers.contract import Key, redis_url
from workers.kube import Kube
from workers.queue import WorkQueue
from workers.queue.dependencies import RedisDependencyIndex
from workers.queue.fair import AddResult, DispatchSettings, FairQueue, Waker
from workers.queue.starting import StartingServers
from workers.reconcile.ports import Ports, TangoPort
from workers.runner import wake as runner_wake

DEFAULT_TANGO_PORT = "workers.tango:PyTangoPort"


@dataclass(frozen=True)
class Runtime:
    queue: WorkQueue
    ports: Ports
    starting: StartingServers
    fair: FairQueue | None
    """The fair dispatcher's queue (None with FIFO dispatch, TANGO_OPERATOR_DISPATCH)."""

    def waker(self, send: Callable[[Key], None]) -> Waker:
        """How this worker wakes another key (a dependent; a starting server): to the
        front of its namespace's lane with fair dispatch, and sent at the urgent priority
        when it is one of a few woken at once; else sent at once. True when it was not
        already queued."""
        fair = self.fair
        if fair is None:
            return functools.partial(runner_wake, self.queue, send)

        def to_front(key: Key, *, urgent: bool = False) -> bool:
            return fair.add(key, front=True, urgent=urgent) is AddResult.PENDING

        return to_front


def _api_client() -> client.ApiClient:
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


def load_tango_port(spec: str) -> TangoPort:
    """Instantiate ``module:Class`` (no arguments)."""
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ValueError(f"TANGO_OPERATOR_TANGO_PORT={spec!r}: expected module:Class")
    module = importlib.import_module(module_name)
    return cast(TangoPort, getattr(module, class_name)())


@functools.cache
def current() -> Runtime:
    redis = Redis.from_url(
        redis_url(),  # TANGO_OPERATOR_REDIS_URL (+ TANGO_OPERATOR_REDIS_PASSWORD)
        socket_timeout=10,
        health_check_interval=30,
    )
    ports = Ports(
        kube=Kube(_api_client()),
        tango=load_tango_port(os.environ.get("TANGO_OPERATOR_TANGO_PORT", DEFAULT_TANGO_PORT)),
        index=RedisDependencyIndex(redis),
        settings=settings.from_environment(),
    )
    lease = float(os.environ.get("TANGO_OPERATOR_LEASE_SECONDS", "30"))
    queue = WorkQueue(redis, lease_seconds=lease)
    dispatch = DispatchSettings.from_environment(os.environ)
    return Runtime(
        queue=queue,
        ports=ports,
        starting=StartingServers(redis),
        fair=FairQueue(queue) if dispatch.fair else None,
    )
