"""``workers.execution.run`` against a real redis-server.

The keys a reconcile wakes are sent urgently when they are few, and only put in front when they are
many. A run registers its server as starting, or forgets it with the lease.
"""

from __future__ import annotations

import pytest
from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue
from tango_operator.workqueue.fair import URGENT_WAKE_LIMIT
from tango_operator.workqueue.starting import StartingServers
from workers.execution import run
from workers.reconcile.ports import Outcome


def _key(name: str) -> Key:
    return Key("DeviceServer", "lab", name)


@pytest.mark.parametrize(
    ("woken", "urgent"), [(1, True), (URGENT_WAKE_LIMIT, True), (URGENT_WAKE_LIMIT + 1, False)]
)
def test_a_few_woken_keys_are_urgent_and_many_are_not(
    redis_client: Redis, woken: int, urgent: bool
) -> None:
    dependents = tuple(_key(f"d{n}") for n in range(woken))
    calls: list[tuple[Key, bool]] = []

    def wake(key: Key, *, urgent: bool = False) -> bool:
        calls.append((key, urgent))
        return True

    report = run(
        _key("provider"),
        queue=WorkQueue(redis_client),
        reconcile=lambda _: Outcome(state="Running", wake=dependents),
        send=lambda _: None,
        wake_other=wake,
    )
    assert report.result == "success"
    assert report.woken == woken
    assert calls == [(key, urgent) for key in dependents]


def test_a_run_registers_its_starting_server_and_a_later_one_forgets_it(
    redis_client: Redis,
) -> None:
    queue, starting = WorkQueue(redis_client), StartingServers(redis_client)
    key, other = _key("server"), _key("other")
    starting.register(other, "db:10000", ("lab/other/1",))
    outcomes = iter(
        [
            Outcome(state="Pending", starting=("db:10000", ("lab/server/1",))),
            Outcome(state="Running"),
        ]
    )

    def reconcile(_: Key) -> Outcome:
        return next(outcomes)

    first = run(key, queue=queue, reconcile=reconcile, send=lambda _: None, starting=starting)
    assert first.state == "Pending"
    assert {entry.key for entry in starting.entries()} == {key, other}
    report = run(key, queue=queue, reconcile=reconcile, send=lambda _: None, starting=starting)
    assert report.state == "Running"
    assert [entry.key for entry in starting.entries()] == [other]


def test_a_failed_run_forgets_its_starting_server(redis_client: Redis) -> None:
    queue, starting = WorkQueue(redis_client), StartingServers(redis_client)
    starting.register(_key("server"), "db:10000", ("lab/server/1",))

    def reconcile(_: Key) -> Outcome:
        raise RuntimeError("the reconcile crashed")

    report = run(
        _key("server"), queue=queue, reconcile=reconcile, send=lambda _: None, starting=starting
    )
    assert report.result == "error"
    assert starting.entries() == []
