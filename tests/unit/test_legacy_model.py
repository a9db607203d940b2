"""The legacy start-up model of the wake-up benchmark.

That model is init-container polling, then CrashLoopBackOff.
"""

from __future__ import annotations

import pytest

from tests.bench.legacy_model import LegacyFlow


def test_a_provider_up_during_polling_is_seen_at_the_next_poll() -> None:
    flow = LegacyFlow(sleep=1.0, tries=100, check_seconds=0.1)
    assert flow.init_done(0.0, 0.0) == pytest.approx(0.1)
    assert flow.init_done(0.0, 2.5) == pytest.approx(3.3 + 0.1)  # polls at 0, 1.1, 2.2, 3.3


def test_tries_running_out_add_crash_loop_back_off() -> None:
    flow = LegacyFlow(sleep=1.0, tries=3, check_seconds=0.0, backoff_start=10, backoff_cap=300)
    # round 1 polls at 0, 1, 2 and ends at 3; back-off 10 s; round 2 polls at 13, 14, 15
    assert flow.init_done(0.0, 12.5) == pytest.approx(13.0)
    # round 2 ends at 16, back-off 20 s: round 3 starts at 36
    assert flow.init_done(0.0, 16.5) == pytest.approx(36.0)


def test_a_chain_starts_one_server_after_the_other() -> None:
    flow = LegacyFlow(sleep=1.0, tries=100, check_seconds=0.0)
    timeline = flow.chain([2.0, 2.0, 2.0])
    assert timeline[0] == (0.0, 2.0)
    assert timeline[1] == pytest.approx((2.0, 4.0))
    assert timeline[2] == pytest.approx((4.0, 6.0))


def test_a_chain_started_later_is_shifted() -> None:
    flow = LegacyFlow(sleep=1.0, tries=100, check_seconds=0.0)
    assert flow.chain([2.0, 2.0], start=3.0) == [
        (3.0, 5.0),
        (pytest.approx(5.0), pytest.approx(7.0)),
    ]
