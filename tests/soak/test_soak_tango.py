"""The soak on real TANGO (``tests.soak.tango_real``), short enough for ``make test``.

kubeemu only: the API faults are kubeemu's own injector (the fault soak runs on the real
control plane too, ``tests/soak/test_soak_short.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import tango_real


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_tango_through_faults_kills_and_a_hung_database(tmp_path: Path) -> None:
    figures = tango_real.run(tango_real.SHORT, tmp_path)
    summary = "\n".join(f"{name}: {value}" for name, value in figures.rows())
    if figures.problems:
        kept = tango_real.keep_logs(tmp_path)
        pytest.fail(f"{figures.problems}\n{summary}\n\nlogs kept in {kept}")
    assert figures.converged_after is not None
    assert figures.faults_injected > 0
    assert figures.kills["celery main"] + figures.kills["in delivery"] == tango_real.SHORT.kills
    assert figures.quiet_db_writes == {}
