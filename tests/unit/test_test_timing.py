"""The suite's own time policy (``tests/conftest.py``): no Hypothesis deadline, the slow list."""

from __future__ import annotations

import pytest
from hypothesis import settings


def test_hypothesis_has_no_per_example_deadline() -> None:
    current = settings.default
    assert current is not None
    assert current.deadline is None
    assert settings.get_profile("dev").deadline is None
    ci = settings.get_profile("ci")
    assert ci.deadline is None
    assert ci.derandomize, "a CI run is reproducible"
    assert ci.print_blob


def test_calls_over_the_threshold_without_the_slow_mark_are_listed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        """
        from tests.conftest import SlowList

        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow")
            config.pluginmanager.register(SlowList(threshold=0.2))
        """
    )
    pytester.makepyfile(
        """
        import time
        import pytest

        def test_unmarked():
            time.sleep(0.3)

        @pytest.mark.slow
        def test_marked():
            time.sleep(0.3)

        def test_quick():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    summary = result.stdout.str().split("tests over 0.2 s not marked slow", 1)
    assert len(summary) == 2, result.stdout.str()
    assert "test_unmarked" in summary[1]
    assert "test_marked" not in summary[1]
    assert "test_quick" not in summary[1]
