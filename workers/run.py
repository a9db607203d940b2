"""Run the operator's Celery worker: ``python -m workers.run [CELERY WORKER OPTIONS]``.

Started by ``tango-operator worker`` (``tango_operator.cli``, under its supervisor) with
``-Q tango-operator`` and the user's options; runs Celery's own ``worker`` command
(``celery.bin.worker.worker``: the same options, defaults, ``CELERY_WORKER_*`` environment
variables and ``--help``) on ``workers.app.app``, the app ``celery -A workers.app worker``
would load.

Why not ``celery -A workers.app worker``: the ``celery`` umbrella command builds every
subcommand and loads every installed plugin before it parses anything — the interactive
shell (click_repl and prompt_toolkit), the AMQP admin, ``inspect``/``control``, Flower's
command — for commands a worker never runs: 0.07 s of CPU and 12 MiB of memory in every
worker process (docs/benchmarks.md). The umbrella's global options (``-A``, ``-b``, ``--config``
...) are not needed here: the app and its settings are the operator's own
(``tango_operator.celery_app``), and ``tango-operator worker`` never passed any.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from celery import maybe_patch_concurrency

PROG_NAME = "celery worker"
"""How Celery's usage and error messages name the command."""
ENVIRONMENT_PREFIX = "CELERY_WORKER"
"""Option defaults from the environment, as under the umbrella (``CELERY`` + ``_WORKER``)."""


def main(argv: Sequence[str] | None = None) -> None:
    """Parse Celery's worker options from ``argv``, run the worker until it stops, and exit.

    Exits with the worker's code, or 2 for a bad command line (click's standalone mode).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    # eventlet/gevent pools patch the standard library before anything else is imported
    maybe_patch_concurrency([PROG_NAME, *arguments])
    from celery.bin.base import CLIContext  # noqa: PLC0415 - after the pool's patches
    from celery.bin.worker import worker  # noqa: PLC0415

    from workers.app import app  # noqa: PLC0415

    worker.params.extend(app.user_options.get("worker", []))
    context = CLIContext(app=app, no_color=None, workdir=None, quiet=False)
    worker.main(
        args=arguments, prog_name=PROG_NAME, obj=context, auto_envvar_prefix=ENVIRONMENT_PREFIX
    )


if __name__ == "__main__":
    main()
