"""The per-process wiring of a worker: Redis, the Kubernetes client, the TANGO port.

Built lazily on the first task in each Celery child process (never in the parent before it
forks, so no connection is shared across processes) from ``workers.settings.for_process``:
the Redis URL, ``KUBECONFIG`` (else the in-cluster service account) and
``TANGO_OPERATOR_TANGO_PORT`` — ``module:Class`` of the TangoPort implementation, by default
the PyTango one in ``workers.tango``; tests plug in a stand-in the same way. Used by
``workers.tasks``.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue, connect
from tango_operator.workqueue.dependencies import RedisDependencyIndex
from tango_operator.workqueue.fair import AddResult, FairQueue, Waker
from tango_operator.workqueue.hosts import RedisDatabaseStates
from tango_operator.workqueue.ledger import RedisChildLedger
from tango_operator.workqueue.piggyback import ReadAhead, WriteBehind
from tango_operator.workqueue.starting import StartingServers
from workers import settings
from workers.api_retry import RetryPolicy
from workers.events import EventRecorder
from workers.execution import wake as execution_wake
from workers.kube import Kube
from workers.reconcile.owners import OwnerCopies
from workers.reconcile.ports import Ports, TangoPort


@dataclass(frozen=True)
class Wiring:
    """What a worker process's tasks run with."""

    settings: settings.WorkerSettings
    queue: WorkQueue
    ports: Ports
    starting: StartingServers
    fair: FairQueue | None
    """The fair dispatcher's queue (None with FIFO dispatch, TANGO_OPERATOR_DISPATCH)."""
    events: EventRecorder | None = None
    """The process's Event poster (``workers.events``), flushed when the worker stops."""
    write_behind: WriteBehind | None = None
    """The writes a run holds back for the release of its lease (the ledger's owner copies)."""
    read_ahead: ReadAhead | None = None
    """The first reads of a DeviceServer's run, made with the begin of its lease (the ledger)."""

    def waker(self, send: Callable[[Key], None]) -> Waker:
        """How this worker wakes another key (a dependent; a starting server).

        To the front of its namespace's lane with fair dispatch, and sent at the urgent priority
        when it is one of a few woken at once; else sent at once. True when it was not already
        queued.
        """
        fair = self.fair
        if fair is None:
            return functools.partial(execution_wake, self.queue, send)

        def to_front(key: Key, *, urgent: bool = False) -> bool:
            return fair.add(key, front=True, urgent=urgent) is AddResult.PENDING

        return to_front


def load_tango_port(spec: str) -> TangoPort:
    """Instantiate ``module:Class`` (no arguments)."""
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ValueError(f"{settings.TANGO_PORT}={spec!r}: expected module:Class")
    module = importlib.import_module(module_name)
    return cast(TangoPort, getattr(module, class_name)())


_lock = threading.Lock()
_built: dict[int, Wiring] = {}


def current() -> Wiring:
    """This process's wiring, built on first use (once, whatever the number of threads)."""
    with _lock:
        wiring = _built.get(os.getpid())
        if wiring is None:
            wiring = _built[os.getpid()] = _build()
        return wiring


def built() -> Wiring | None:
    """This process's wiring if a task has built it, else None (nothing is connected)."""
    with _lock:
        return _built.get(os.getpid())


def _build() -> Wiring:
    loaded = settings.for_process()
    redis = connect(loaded.redis_url)
    queue = WorkQueue(
        redis, lease_seconds=loaded.lease_seconds, backoff_cap=loaded.backoff_cap_seconds
    )
    write_behind = WriteBehind()
    ledger = RedisChildLedger(redis, write_behind=write_behind)
    kube = Kube.connect(loaded.kubeconfig, retry=RetryPolicy(retries=loaded.api_retries))
    ports = Ports(
        # custom resources from the watcher's copies (workers.reconcile.owners)
        kube=OwnerCopies(kube, ledger),
        tango=load_tango_port(loaded.tango_port),
        index=RedisDependencyIndex(redis, write_behind=write_behind),
        settings=loaded.reconcile,
        ledger=ledger,
        databases=RedisDatabaseStates(redis),
    )
    return Wiring(
        settings=loaded,
        queue=queue,
        ports=ports,
        starting=StartingServers(redis),
        fair=FairQueue(queue) if loaded.dispatch.fair else None,
        events=kube.events,
        write_behind=write_behind,
        read_ahead=ledger,
    )
