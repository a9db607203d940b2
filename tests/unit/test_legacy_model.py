"""The start-up models of the wake-up benchmark (``tests.bench.legacy_model``).

The legacy one is ``retry.sh`` polling in an init container, then CrashLoopBackOff; the
operator's scales a dependent up a measured wake-up after its provider is exported.
"""

from __future__ import annotations

import random

import pytest

from tests.bench.legacy_model import (
    GLOBAL_RETRY,
    OPERATOR,
    UTIL_DEFAULT,
    LegacyFlow,
    Retry,
    ServerStart,
    Timeline,
    drawn_starts,
    operator_chain,
    simulate,
)

CONSTANT = Retry("test", tries=3, sleep=1.0)


def _start(boot: float, launch: float = 0.0, handoff: float = 0.0) -> ServerStart:
    return ServerStart(launch=launch, handoff=handoff, boot=boot)


def test_retry_sh_runs_tries_plus_one_times_with_constant_or_doubling_sleeps() -> None:
    assert GLOBAL_RETRY.sleeps() == [1.0] * 100  # 101 runs of ping-device
    # --max=60: retry.sh's defaults otherwise, 10 tries from 0.3 s doubling, capped at 60 s
    assert UTIL_DEFAULT.sleeps() == pytest.approx(
        [0.3, 0.6, 1.2, 2.4, 4.8, 9.6, 19.2, 38.4, 60.0, 60.0]
    )


def test_a_provider_up_during_polling_is_seen_at_the_next_poll() -> None:
    flow = LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.1)
    assert flow.init_done(0.0, 0.0).done == pytest.approx(0.1)
    wait = flow.init_done(0.0, 2.5)  # runs at 0, 1.1, 2.2, 3.3
    assert wait.done == pytest.approx(3.4)
    assert (wait.restarts, wait.gap) == (0, False)


def test_the_max_60_variant_waits_out_its_growing_sleeps() -> None:
    flow = LegacyFlow(retry=UTIL_DEFAULT, check_seconds=0.0)
    # runs at 0, 0.3, 0.9, 2.1, 4.5, 9.3, 18.9, 38.1: a provider up at 20 s is seen at 38.1
    assert flow.init_done(0.0, 20.0).done == pytest.approx(38.1)
    assert LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.0).init_done(0.0, 20.0).done == 20.0


def test_runs_running_out_add_crash_loop_back_off() -> None:
    flow = LegacyFlow(retry=CONSTANT, check_seconds=0.0, backoff_start=10, backoff_cap=300)
    # round 1 runs at 0, 1, 2, 3 and ends at 3; back-off 10 s; round 2 runs at 13 … 16
    assert flow.init_done(0.0, 12.5).done == pytest.approx(13.0)
    assert flow.init_done(0.0, 14.5).done == pytest.approx(15.0)
    # round 2 ends at 16, back-off 20 s: round 3 starts at 36
    assert flow.init_done(0.0, 16.5).done == pytest.approx(36.0)
    assert flow.init_done(0.0, 16.5).restarts == 2


def test_a_gap_is_a_provider_up_during_back_off_not_a_restarted_round() -> None:
    flow = LegacyFlow(retry=CONSTANT, check_seconds=0.0, backoff_start=10, backoff_cap=300)
    assert flow.init_done(0.0, 12.5).gap  # up during the 10 s back-off
    restarted = flow.init_done(0.0, 14.5)  # up while round 2 polls: one restart, no gap
    assert (restarted.restarts, restarted.gap) == (1, False)
    assert not flow.init_done(0.0, 2.5).gap


def test_back_off_is_capped() -> None:
    flow = LegacyFlow(retry=Retry("t", tries=0, sleep=1.0), check_seconds=0.0)
    # one run per round, at 0, 10, 30, 70, 150, 310 and (back-off 320 capped to 300) 610 s
    assert flow.init_done(0.0, 600.0).done == pytest.approx(610.0)
    assert flow.init_done(0.0, 600.0).restarts == 6


def test_a_legacy_chain_starts_one_server_after_the_other() -> None:
    flow = LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.0)
    timeline = flow.chain([_start(2.0), _start(2.0), _start(2.0)])
    assert timeline.process_started == pytest.approx([0.0, 2.0, 4.0])
    assert timeline.exported == pytest.approx([2.0, 4.0, 6.0])
    assert timeline.links() == pytest.approx([0.0, 0.0])
    assert not timeline.hit_backoff()


def test_a_legacy_server_pays_launch_before_polling_and_handoff_after() -> None:
    flow = LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.0)
    timeline = flow.chain([_start(2.5, launch=0.5), _start(1.0, launch=0.5, handoff=0.25)])
    # server 1's init container polls from 0.5 s: 0.5, 1.5, 2.5, 3.5; its provider is up at 3.0
    assert timeline.exported[0] == pytest.approx(3.0)
    assert timeline.process_started[1] == pytest.approx(3.5 + 0.25)
    assert timeline.links() == pytest.approx([0.75])
    assert timeline.chain_time() == pytest.approx(3.75)


def test_a_legacy_chain_started_later_is_shifted() -> None:
    flow = LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.0)
    timeline = flow.chain([_start(2.0), _start(2.0)], start=3.0)
    assert timeline.process_started == pytest.approx([3.0, 5.0])
    assert timeline.chain_time(start=3.0) == pytest.approx(2.0)


def test_the_operator_scales_a_dependent_a_wake_up_after_its_provider_is_up() -> None:
    timeline = operator_chain([_start(2.0, launch=0.5), _start(1.0, launch=0.5)], [0.2])
    assert timeline.exported == pytest.approx([2.5, 4.2])
    assert timeline.links() == pytest.approx([0.2 + 0.5])
    assert not timeline.hit_backoff()
    with pytest.raises(ValueError, match="one wake-up per link"):
        operator_chain([_start(1.0)], [0.2])


def test_drawn_starts_are_jittered_within_bounds_and_keep_the_kubelet_part() -> None:
    kubelet = [_start(0.5, launch=0.3, handoff=0.1)]
    starts = drawn_starts(random.Random(7), 1000, kubelet, low=15.0, high=25.0)
    totals = [s.launch + s.boot for s in starts]
    assert all(15.0 <= t <= 25.0 for t in totals)
    assert max(totals) - min(totals) > 9.0  # spread, not one fixed value
    assert all((s.launch, s.handoff) == (0.3, 0.1) for s in starts)
    again = drawn_starts(random.Random(7), 1000, kubelet, low=15.0, high=25.0)
    assert again == starts  # seeded


def test_jittered_starts_sample_back_off_gaps_that_fixed_starts_miss() -> None:
    kubelet = [_start(0.0, launch=0.2, handoff=0.1)]
    flows = [LegacyFlow(retry=GLOBAL_RETRY), LegacyFlow(retry=UTIL_DEFAULT)]
    jittered = simulate(random.Random(1), 10, 300, kubelet, [0.15], flows)
    fixed = simulate(random.Random(1), 10, 300, kubelet, [0.15], flows, low=20.0, high=20.0)
    for result in (jittered, fixed):
        assert result[OPERATOR].backoff_chains == 0
        assert len(result[OPERATOR].links) == 300 * 10
        assert len(result[GLOBAL_RETRY.label].chains) == 300
    # 101 runs of 1.1 s end after ~111 s: a depth-10 chain outlasts them; whether a provider
    # then comes up inside a back-off depends on the start times
    gaps = jittered[GLOBAL_RETRY.label].backoff_chains
    assert 0 < gaps < 300
    assert fixed[GLOBAL_RETRY.label].backoff_chains in (0, 300)
    slowest = max(jittered[GLOBAL_RETRY.label].links)
    assert slowest > 5.0  # the rest of a back-off, not one poll interval
    assert max(fixed[GLOBAL_RETRY.label].links) < 1.5


def test_both_flows_replay_the_same_draws() -> None:
    kubelet = [_start(0.0, launch=0.2, handoff=0.2)]
    flows = [LegacyFlow(retry=GLOBAL_RETRY, check_seconds=0.0)]
    result = simulate(random.Random(3), 1, 50, kubelet, [0.0], flows)
    # with no wake-up and handoff == launch, a legacy link is the operator's plus polling
    for operator, legacy in zip(
        result[OPERATOR].links, result[GLOBAL_RETRY.label].links, strict=True
    ):
        assert operator <= legacy <= operator + 1.0 + 1e-9


def test_timeline_chain_time_is_to_the_last_process_started() -> None:
    timeline = Timeline([0.0, 3.0], [2.0, 9.0], [0, 0], [False, False])
    assert timeline.chain_time() == 3.0
    assert timeline.links() == [1.0]
