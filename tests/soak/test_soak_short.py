"""The fault soak at ``make test`` size (``tests.soak.soak.SHORT``).

40 DeviceServers and 4 DatabaseDS in 4 namespaces under a minute of API faults, worker kills, a
Redis flush, a leader kill and a TANGO DB outage — the same scenario and checks as ``make soak``.

Convergence has generous deadlines (a loaded CI machine is slow, not wrong); the checks
of the outcome are the full run's, unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import soak


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_short_soak(tmp_path: Path) -> None:
    figures = soak.run(soak.SHORT, tmp_path)
    summary = "\n".join(f"{name}: {value}" for name, value in figures.rows())
    assert figures.problems == [], f"{summary}\n\nlogs and trace in {tmp_path}"
    assert figures.converged_after is not None
    assert figures.fleet.child_kills + figures.fleet.pod_kills == soak.SHORT.kills
    assert figures.watchers.takeover_seconds is not None
