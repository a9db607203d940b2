"""``python -m workers.run``: Celery's worker command on the operator's app, without the umbrella.

Run as a process, as ``tango-operator worker`` runs it: Celery's own options, help and
usage errors; option defaults from ``CELERY_WORKER_*`` variables, as under ``celery``; and
none of the modules the ``celery`` umbrella command loads for its other subcommands and
plugins (the reason this entry point exists).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UMBRELLA_ONLY = ("click_repl", "prompt_toolkit", "flower", "celery.bin.celery", "celery.bin.shell")
"""Modules ``celery -A workers.app worker`` imports and a worker never uses."""


def _run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "workers.run", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def _imported(stderr: str) -> set[str]:
    """The module names ``-X importtime`` reported."""
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "import time:" in line
    }


def test_celerys_worker_options_and_help_without_the_umbrella() -> None:
    done = _run("--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: celery worker [OPTIONS]" in done.stdout
    for option in ("--concurrency", "--pool", "--queues", "--without-gossip", "--loglevel"):
        assert option in done.stdout
    imported = _imported(done.stderr)
    assert "celery.bin.worker" in imported
    assert not {name for name in imported if name.startswith(UMBRELLA_ONLY)}


def test_a_bad_option_is_a_usage_error_the_supervisor_does_not_restart() -> None:
    done = _run("--no-such-option")
    assert done.returncode == 2
    assert "No such option '--no-such-option'" in done.stderr


def test_option_defaults_come_from_celery_worker_variables() -> None:
    """A bad value through the environment is refused by the option it names."""
    done = _run("--help", env={"CELERY_WORKER_POOL": "no-such-pool"})
    assert done.returncode == 0, "help does not validate defaults"
    refused = _run("-Q", "q", env={"CELERY_WORKER_POOL": "no-such-pool"})
    assert refused.returncode == 2
    assert "no-such-pool" in refused.stderr
