"""The fault soak at ``make test`` size (``tests.soak.soak.SHORT``), on each API server.

40 DeviceServers and 4 DatabaseDS in 4 namespaces under a minute of API faults, worker kills, a
Redis flush, a leader kill and a TANGO DB outage — the same scenario and checks as ``make soak``.
It runs on kubeemu and on the real kube-apiserver (``--kube-api`` picks; ``tests.soak.servers``:
a control plane of the soak's own with a simulated node, the faults from the fault proxy in
front of it). Without the control plane's binaries the real run is skipped (failed under
``CI=true``).

Convergence has generous deadlines (a loaded CI machine is slow, not wrong); the checks
of the outcome are the full run's, unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import selected_kube_apis
from tests.soak import servers, soak
from tests.support.real_parts import unavailable


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api" in metafunc.fixturenames:
        metafunc.parametrize("api", selected_kube_apis(metafunc.config))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_short_soak(tmp_path: Path, api: servers.ApiChoice) -> None:
    missing = servers.missing_parts(api)
    if missing is not None:
        unavailable(missing)
    figures = soak.run(soak.SHORT, tmp_path, api)
    summary = "\n".join(f"{name}: {value}" for name, value in figures.rows())
    assert figures.problems == [], f"{summary}\n\nlogs and trace in {tmp_path}"
    assert figures.converged_after is not None
    assert figures.fleet.kills == soak.SHORT.kills
    assert figures.watchers.takeover_seconds is not None
