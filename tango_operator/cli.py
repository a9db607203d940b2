"""The ``tango-operator`` command: one entry point for every process of the operator.

``tango-operator watcher`` runs ``python -m watcher``, ``tango-operator worker`` runs
Celery's worker command on the operator's app and queue (``python -m workers.run``, kept
alive by ``tango_operator.supervise``), ``tango-operator render`` runs
``python -m workers.render`` and ``tango-operator status`` runs ``python -m workers.status``.
Each is a process of its own, started by module name: the core never imports the watcher
or the workers (the import contracts in ``pyproject.toml`` forbid it), and every subcommand
accepts its own ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata

from tango_operator import environment, supervise, variables
from tango_operator.messages import QUEUE_NAME

COMMANDS = {
    "render": "print the child manifests of DeviceServer/DatabaseDS resources (no cluster)",
    "status": "list the TANGO device servers of the cluster: state, devices, why not running",
    "watcher": "run the watcher (list/watch → Redis), leader-elected",
    "worker": "run Celery workers: every `celery worker` option is accepted",
}
WORKER_HELP = f"""usage: tango-operator worker [CELERY WORKER OPTIONS]

Run Celery workers on the operator's queue ({QUEUE_NAME}), restarted after a crash by a
supervisor; every `celery worker` option is accepted (--pool and --concurrency default to
TANGO_OPERATOR_WORKER_POOL and TANGO_OPERATOR_WORKER_CONCURRENCY)."""
MODULES = {"render": "workers.render", "status": "workers.status", "watcher": "watcher"}
DEFAULT_POOL = "threads"
"""Reconciles wait on the network (API server, Redis, TANGO), not on the CPU: threads give
many in flight per process for a few MiB each, where a prefork child costs a process."""
DEFAULT_CONCURRENCY = 8
"""The module each process-running command executes (``python -m MODULE``)."""


def version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version("tango-operator")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    """The top-level parser: the subcommands and ``--version``."""
    top = argparse.ArgumentParser(
        prog="tango-operator",
        description="Kubernetes operator for TANGO-controls. "
        "Run `tango-operator COMMAND --help` for the options of a command.",
    )
    top.add_argument("--version", action="version", version=f"tango-operator {version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return top


def _exec_module(module: str, rest: Sequence[str]) -> int:
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    return 1  # not reached


def _exec_worker(rest: Sequence[str]) -> int:
    """``python -m workers.run -Q tango-operator`` plus the user's options.

    ``workers.run`` is ``celery -A workers.app worker`` without the umbrella command's cost.

    Sets up PROMETHEUS_MULTIPROC_DIR (a fresh directory unless given) so the metrics of all
    Celery child processes add up on the main process's /metrics. The worker runs under
    ``tango_operator.supervise`` (restarted after a crash, see there) unless
    ``TANGO_OPERATOR_WORKER_MAX_RESTARTS=0``, which execs Celery in place.
    """
    variables = dict(os.environ)
    if not variables.get("PROMETHEUS_MULTIPROC_DIR"):
        variables["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tango-operator-metrics-")
    command = [sys.executable, "-m", "workers.run", "-Q", QUEUE_NAME]
    command += _defaults(rest, variables)
    command += rest
    try:
        max_restarts = environment.whole_number(variables, "TANGO_OPERATOR_WORKER_MAX_RESTARTS", 10)
    except environment.SettingsError as exc:
        raise SystemExit(str(exc)) from None
    if max_restarts == 0:
        os.execve(sys.executable, command, variables)
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/supervisor] %(message)s"
    )
    supervisor = supervise.Supervisor(
        command, variables, supervise.RestartPolicy(max_restarts=max_restarts)
    )
    supervisor.install_signal_handlers()
    return supervisor.run()


def _given(rest: Sequence[str], short: str, long: str) -> bool:
    return any(
        argument in (short, long) or argument.startswith((f"{long}=", short)) for argument in rest
    )


def _defaults(rest: Sequence[str], variables: dict[str, str]) -> list[str]:
    """The pool and in-flight count, unless the user's Celery options set them.

    ``TANGO_OPERATOR_WORKER_POOL`` (default ``threads``) and
    ``TANGO_OPERATOR_WORKER_CONCURRENCY`` (default 8: reconciles in flight per process).
    """
    options: list[str] = []
    if not _given(rest, "-P", "--pool"):
        options += [
            "--pool",
            environment.text(variables, "TANGO_OPERATOR_WORKER_POOL", DEFAULT_POOL),
        ]
    if not _given(rest, "-c", "--concurrency"):
        try:
            concurrency = environment.whole_number(
                variables, "TANGO_OPERATOR_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1
            )
        except environment.SettingsError as exc:
            raise SystemExit(str(exc)) from None
        options += ["--concurrency", str(concurrency)]
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named by the first argument (its own options follow it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["worker"] and {"-h", "--help"} & set(arguments[1:]):
        print(WORKER_HELP + "\n\n" + variables.help_text(variables.WORKER), flush=True)
        print("\nCelery's own worker options follow.\n", flush=True)
    if arguments and arguments[0] == "worker":
        return _exec_worker(arguments[1:])
    if arguments and arguments[0] in MODULES:
        return _exec_module(MODULES[arguments[0]], arguments[1:])
    parser().parse_args(arguments)  # --help, --version, or a usage error: exits
    return 2  # not reached: a known command is handled above


if __name__ == "__main__":
    sys.exit(main())
