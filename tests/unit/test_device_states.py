"""tango_operator.device_states: the device summary the workers write and the watcher reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tango_operator.device_states import counts, severity, summarize

STATES = ("ON", "OFF", "FAULT", "ALARM", "UNKNOWN", "RUNNING", "STANDBY", "MOVING", "INIT")


def test_one_state_reads_like_jive() -> None:
    assert summarize(["ON", "ON", "ON"]) == "3/3 ON"


def test_several_states_most_common_first_then_worst_first() -> None:
    assert summarize(["ON", "FAULT", "ON"]) == "2/3 ON, 1 FAULT"
    assert summarize(["ON", "ALARM", "FAULT"]) == "1/3 FAULT, 1 ALARM, 1 ON"
    assert summarize([]) == ""


def test_unhealthy_states_are_ranked_and_the_rest_are_healthy() -> None:
    assert [severity(s) for s in ("FAULT", "UNKNOWN", "ALARM", "ON", "OFF")] == [0, 1, 2, 3, 3]


@given(st.lists(st.sampled_from(STATES), min_size=1, max_size=200))
def test_counts_is_the_inverse_of_summarize(states: list[str]) -> None:
    assert counts(summarize(states)) == {s: states.count(s) for s in set(states)}


def test_text_of_another_form_counts_nothing() -> None:
    for text in ("", "ON", "3 ON", "2/3 ON", "2/3 ON, x FAULT", "1/1 ON, 1 FAULT"):
        assert counts(text) == {}, text
