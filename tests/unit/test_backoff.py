"""Failure backoff of the work queue: growth, cap, jitter bounds, determinism.

Pure arithmetic (``tango_operator.workqueue.backoff``) and ``WorkQueue.backoff``, which needs
no Redis server: a client object connects lazily, and registering scripts is local.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis

from tango_operator.workqueue import WorkQueue
from tango_operator.workqueue.backoff import JITTER, backoff_delay, draw_jitter, nominal_delay


def unconnected_queue(**options: Any) -> WorkQueue:
    # Port 1 is never listened on: any accidental network use fails loudly.
    return WorkQueue(redis.Redis(host="127.0.0.1", port=1), **options)


def test_nominal_delay_doubles_from_base_until_cap() -> None:
    delays = [nominal_delay(n, base=0.5, cap=300) for n in range(1, 14)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


@pytest.mark.parametrize("failures", [0, -1, -100])
def test_no_failure_no_delay(failures: int) -> None:
    assert nominal_delay(failures, base=0.5, cap=300) == 0
    assert unconnected_queue().backoff(failures) == 0


def test_huge_failure_counts_stay_at_the_cap() -> None:
    assert nominal_delay(10**9, base=0.5, cap=300) == 300
    assert backoff_delay(10**9, base=7, cap=42, jitter=1.0) == 42


def test_jitter_scales_the_nominal_delay() -> None:
    assert backoff_delay(3, base=0.5, cap=300, jitter=0.5) == 1.0
    assert backoff_delay(3, base=0.5, cap=300, jitter=0.75) == 1.5
    assert JITTER == (0.5, 1.0)
    rng = random.Random(1)
    draws = [draw_jitter(rng) for _ in range(2000)]
    assert all(0.5 <= d <= 1.0 for d in draws)
    assert min(draws) < 0.52
    assert max(draws) > 0.98


def test_backoff_stays_within_half_and_full_nominal_delay() -> None:
    queue = unconnected_queue(backoff_base=0.25, backoff_cap=60, rng=random.Random(5))
    for failures in range(1, 30):
        nominal = min(60, 0.25 * 2 ** (failures - 1))
        for _ in range(20):
            assert nominal * 0.5 <= queue.backoff(failures) <= nominal


def test_backoff_is_deterministic_with_an_injected_rng() -> None:
    first = unconnected_queue(rng=random.Random(42))
    second = unconnected_queue(rng=random.Random(42))
    other = unconnected_queue(rng=random.Random(43))
    sequence = [first.backoff(n) for n in range(1, 12)]
    assert sequence == [second.backoff(n) for n in range(1, 12)]
    assert sequence != [other.backoff(n) for n in range(1, 12)]
    twin = random.Random(42)
    assert sequence[3] != 0
    assert sequence == [min(60, 0.5 * 2 ** (n - 1)) * twin.uniform(0.5, 1.0) for n in range(1, 12)]


@pytest.mark.parametrize(
    "options",
    [
        {"lease_seconds": 0},
        {"stale_after": -1},
        {"backoff_base": 0},
        {"backoff_cap": 0},
        {"max_attempts": 0},
    ],
)
def test_nonsense_settings_are_rejected(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        unconnected_queue(**options)
