"""workers.api_retry: which failures of one API request are retried, and after how long."""

from __future__ import annotations

import random

import pytest

from workers.api_retry import RetryPolicy


def _policy(**overrides: float) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(3), **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, None])
def test_transient_failures_are_retried_with_growing_jittered_delays(status: int | None) -> None:
    policy = _policy()
    delays = [policy.delay(status, {}, tries) for tries in range(1, 6)]
    assert delays[-1] is None, "four retries, then the error goes to the work queue"
    for tries, delay in enumerate(delays[:-1], start=1):
        nominal = min(policy.cap, policy.base * 2 ** (tries - 1))
        assert delay is not None
        assert nominal * 0.5 <= delay <= nominal


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 501])
def test_other_answers_are_not_retried(status: int) -> None:
    assert _policy().delay(status, {}, 1) is None


def test_retry_after_is_honoured_up_to_its_limit() -> None:
    policy = _policy(max_retry_after=5.0)
    assert policy.delay(429, {"Retry-After": "2"}, 1) == 2.0
    assert policy.delay(503, {"Retry-After": "0"}, 1) == 0.0
    assert policy.delay(429, {"Retry-After": "30"}, 1) is None, "requeued with that delay instead"
    delay = policy.delay(429, {"Retry-After": "soon"}, 1)  # not a number: own backoff
    assert delay is not None
    assert delay <= policy.base


def test_zero_retries_turns_it_off() -> None:
    assert RetryPolicy(retries=0).delay(503, {}, 1) is None
