"""``workers.execution.run`` against a real redis-server.

The keys a reconcile wakes are sent urgently when they are few, and only put in front when they are
many.
"""

from __future__ import annotations

import pytest
from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue
from tango_operator.workqueue.fair import URGENT_WAKE_LIMIT
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
