"""What each Redis call of a DeviceServer's life costs: redis-server's time and the caller's CPU.

Command: ``make bench-scripts`` (= ``python -m tests.bench.bench_queue_scripts``; ``--keys``,
``--namespaces``, ``--repeats``). On a fresh redis-server (``devstack.redis_server``), the
work queue, the fair queue and the child ledger of ``tango_operator.workqueue`` are called
the way one DeviceServer's two passes call them, once per key for ``--keys`` keys in
``--namespaces`` namespaces: the watcher's offer (``FairQueue.add``), its record of a CR
event (``observe_owner``) and of a child event (``observe``), a worker's take of its next
key (``FairQueue.take``), lease (``WorkQueue.begin``), reads (``owner_and_records``),
finish (``WorkQueue.finish`` with the starting registry's field) and record of its own write
(``wrote_owner``); then the lease with the reads riding on it and the finish with the write
riding on it, as a run makes them (``tango_operator.workqueue.piggyback``). Beside them, the
baseline: a plain ``GET`` round trip, the same client and server, no script.

Out: a table (median of ``--repeats`` runs, each on a fresh server) of the server's time per
call, from ``INFO commandstats`` (a script's ``evalsha`` time includes the commands it
calls), and the calling thread's CPU per call (``time.thread_time``: redis-py, hiredis, the
socket); written to docs/benchmarks.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

from redis import Redis

from devstack.redis_server import RedisServer
from tango_operator.keys import Key
from tango_operator.messages import queue_lists
from tango_operator.observed import ChildState
from tango_operator.workqueue import Lease, WorkQueue
from tango_operator.workqueue.fair import FairQueue
from tango_operator.workqueue.ledger import RedisChildLedger
from tango_operator.workqueue.piggyback import WriteBehind
from tango_operator.workqueue.starting import StartingServers
from tests.bench.report import median, write_section

JsonDict = dict[str, Any]
HEADER = "| call | made by | redis-server µs per call | caller CPU µs per call |\n|---|---|---|---|"


def _device_server(key: Key, version: int) -> JsonDict:
    """A DeviceServer as the watcher sees it, about the size of the benchmark's CRs."""
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {
            "name": key.name,
            "namespace": key.namespace,
            "uid": f"{version:036d}",
            "resourceVersion": str(version),
            "generation": 1,
            "labels": {"app": "motor"},
            "finalizers": ["tango.tango-controls.org/finalizer"],
        },
        "spec": {
            "dsname": "Motor",
            "args": key.name,
            "command": "/usr/bin/Motor",
            "databaseds": "db.example",
            "image": "motor:1",
        },
    }


URGENT_LIST = queue_lists()[0]
"""Celery's urgent list, which a worker's take checks is empty (it is, here)."""
STATEFULSET = ChildState(
    digest="0" * 16,
    version="1234",
    ready=True,
    detail={"replicas": 1, "readyReplicas": 1, "generation": 1, "observedGeneration": 1},
)


class Measured:
    """Server time and caller CPU of the calls made inside one ``measure`` block."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.rows: dict[str, tuple[str, float, float]] = {}

    def measure(
        self,
        name: str,
        caller: str,
        calls: list[Callable[[], object]],
        *,
        beside_scripts: tuple[str, ...] = (),
    ) -> None:
        """Make ``calls`` one after another; record their cost per call under ``name``.

        ``beside_scripts``: commands sent next to the scripts (in their pipeline) whose time
        counts too; a script's own commands are in its time already.
        """
        self.redis.config_resetstat()
        started = time.thread_time()
        for call in calls:
            call()
        cpu = time.thread_time() - started
        stats = cast(dict[str, dict[str, float]], self.redis.info("commandstats"))
        scripts = stats.get("cmdstat_evalsha")
        if scripts and scripts["calls"]:
            server = scripts["usec"]  # the commands a script calls are counted in it too
            server += sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in beside_scripts)
        else:
            server = sum(s["usec"] for n, s in stats.items() if n != "cmdstat_config")
        self.rows[name] = (caller, server / len(calls), cpu * 1e6 / len(calls))


def run_once(keys: list[Key]) -> dict[str, tuple[str, float, float]]:
    """One fresh redis-server; every call of a DeviceServer's two passes, for every key."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-scripts-") as scratch,
        RedisServer(Path(scratch)) as server,
    ):
        redis = Redis.from_url(server.url)
        queue, ledger = WorkQueue(redis), RedisChildLedger(redis)
        fair, starting = FairQueue(queue), StartingServers(redis)
        measured = Measured(redis)
        redis.set("plain", "1")
        measured.measure(
            "GET (no script: the baseline)", "—", [partial(redis.get, "plain")] * len(keys)
        )
        measured.measure(
            "offer a key (`FairQueue.add`)", "watcher", [partial(fair.add, k) for k in keys]
        )
        measured.measure(
            "record a CR event (`observe_owner`)",
            "watcher",
            [partial(ledger.observe_owner, k, _device_server(k, 10)) for k in keys],
        )
        measured.measure(
            "record a child event (`observe`)",
            "watcher",
            [partial(ledger.observe, k, "StatefulSet/x", STATEFULSET) for k in keys],
        )
        taken: list[Key] = []

        def take() -> None:
            key = fair.take(unless_waiting=URGENT_LIST, weights={})
            assert key is not None, "every key offered is taken once"
            taken.append(key)

        measured.measure(
            "take the next key in turn (`FairQueue.take`)", "worker", [take] * len(keys)
        )
        leases: list[Lease] = []

        def begin(key: Key) -> None:
            lease = queue.begin(key)
            assert isinstance(lease, Lease), f"{key} was busy"
            leases.append(lease)

        measured.measure(
            "take the lease (`WorkQueue.begin`)",
            "worker",
            [partial(begin, k) for k in taken],
        )
        measured.measure(
            "read owner copy and child records (pipelined)",
            "worker",
            [partial(ledger.owner_and_records, k) for k in keys],
        )
        measured.measure(
            "record its own write (`wrote_owner`)",
            "worker",
            [partial(ledger.wrote_owner, k, _device_server(k, 11)) for k in keys],
        )
        measured.measure(
            "finish (`WorkQueue.finish`)",
            "worker",
            [
                partial(queue.finish, lease, success=True, supersede=True, forget_in=starting.name)
                for lease in leases
            ],
        )
        # the same lease and finish with what rides on them (tango_operator.workqueue.piggyback)
        leases.clear()

        def begin_reading_ahead(key: Key) -> None:
            lease = queue.begin(key, read_ahead=ledger)
            assert isinstance(lease, Lease), f"{key} was busy"
            assert lease.read_ahead is not None, "read ahead"
            leases.append(lease)

        measured.measure(
            "take the lease, its first reads riding on it (`begin(read_ahead=…)`)",
            "worker",
            [partial(begin_reading_ahead, k) for k in keys],
            beside_scripts=("hmget", "hgetall"),
        )
        behind = WriteBehind()
        holding = RedisChildLedger(redis, write_behind=behind)

        def finish_with_held(lease: Lease) -> None:
            with behind.collecting() as held:
                holding.wrote_owner(lease.key, _device_server(lease.key, 12))
            queue.finish(lease, success=True, supersede=True, forget_in=starting.name, held=held)

        measured.measure(
            "finish, its own write riding on it (`finish(held=…)`)",
            "worker",
            [partial(finish_with_held, lease) for lease in leases],
        )
        redis.close()
        return measured.rows


def main() -> None:
    """Run, print the table, update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/")
    options = parser.parse_args()
    keys = [
        Key("DeviceServer", f"team-{i % options.namespaces:02d}", f"ds-{i:05d}")
        for i in range(options.keys)
    ]
    runs = [run_once(keys) for _ in range(options.repeats)]
    lines = [HEADER]
    for name, (caller, _, _) in runs[0].items():
        server = median([run[name][1] for run in runs])
        cpu = median([run[name][2] for run in runs])
        lines.append(f"| {name} | {caller} | {server:.1f} | {cpu:.0f} |")
    table = "\n".join(lines)
    print(table, flush=True)
    if options.no_doc:
        return
    command = (
        f"python -m tests.bench.bench_queue_scripts --keys {options.keys} "
        f"--namespaces {options.namespaces} --repeats {options.repeats}"
    )
    write_section(
        "bench_queue_scripts",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; medians of "
        f"{options.repeats} runs, each on a fresh redis-server):\n\n{table}",
    )


if __name__ == "__main__":
    main()
