"""The dispatcher's automatic window against its definition (pure: no Redis).

``Dispatcher`` keeps the peak of the last minute as a sliding-window maximum; the window must be
what the plain definition gives (the largest count seen within ``PEAK_SECONDS``, and with
draining the peak minus the last count), whatever the sequence of looks.
"""

from __future__ import annotations

from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from tango_operator.workqueue.fair import FairQueue
from watcher.dispatch import FLOOR, MAX_AUTO_WINDOW, PEAK_SECONDS, Dispatcher

Looks = list[tuple[float, int]]
looks = st.lists(
    st.tuples(st.floats(min_value=0, max_value=PEAK_SECONDS / 2), st.integers(0, 3000)),
    max_size=60,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _expected(seen: Looks, now: float, *, draining: bool) -> int:
    recent = [count for at, count in seen if at >= now - PEAK_SECONDS]
    peak = max(recent, default=0)
    if draining:
        running = seen[-1][1] if seen else 0
        return min(MAX_AUTO_WINDOW, max(0, peak - running) + FLOOR)
    return min(MAX_AUTO_WINDOW, 2 * peak + FLOOR)


@given(looks, st.booleans())
def test_the_window_is_the_peak_of_the_last_minute(steps: Looks, draining: bool) -> None:
    clock = Clock()
    dispatcher = Dispatcher(cast(FairQueue, None), lambda _: None, draining=draining, clock=clock)
    seen: Looks = []
    assert dispatcher.window() == FLOOR
    for pause, running in steps:
        clock.now += pause
        dispatcher._observe(running)
        seen.append((clock.now, running))
        assert dispatcher.window() == _expected(seen, clock.now, draining=draining)


def test_a_peak_is_forgotten_after_a_minute_and_the_next_largest_counts() -> None:
    clock = Clock()
    dispatcher = Dispatcher(cast(FairQueue, None), lambda _: None, clock=clock)
    for running in (5, 40, 30, 10):
        dispatcher._observe(running)
        clock.now += 10
    assert dispatcher.window() == 2 * 40 + FLOOR
    clock.now = 10 + PEAK_SECONDS + 1  # the 40 was seen at 10 s
    dispatcher._observe(0)
    assert dispatcher.window() == 2 * 30 + FLOOR
