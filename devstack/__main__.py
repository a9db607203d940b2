"""``python -m devstack demo | kubelet``: the embedded local stack from the command line.

``demo`` is ``make demo`` (see ``devstack.demo``). ``kubelet`` runs only the local kubelet
against an existing API server (a kubeemu started with ``--statefulsets manual``), for
running the other pieces by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from kubernetes import config

from devstack import demo
from devstack.runner import plan
from devstack.runner.kubelet import LocalKubelet


def _kubelet(args: argparse.Namespace) -> int:
    host_map = json.loads(args.host_map) if args.host_map else {}
    commands = dict(plan.DEFAULT_COMMANDS)
    for entry in args.command:
        image_path, _, local = entry.partition("=")
        if not local:
            raise SystemExit(f"--command {entry!r}: expected IMAGE_PATH=LOCAL_PATH")
        commands[image_path] = (local,)
    kubelet = LocalKubelet(
        config.new_client_from_config(config_file=args.kubeconfig),
        plan.Settings(workdir=Path(args.workdir), host_map=host_map, commands=commands),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    kubelet.run(stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m devstack demo`` or ``kubelet``; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(commands.add_parser("demo", help="the operator on its embedded local stack"))
    kubelet = commands.add_parser("kubelet", help="run the local kubelet only")
    kubelet.add_argument("--kubeconfig", required=True)
    kubelet.add_argument("--workdir", required=True)
    kubelet.add_argument("--host-map", help='JSON: {"cluster-host:port": "local-host:port"}')
    kubelet.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="IMAGE_PATH=LOCAL_PATH",
        help="run LOCAL_PATH where a container runs IMAGE_PATH (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        return demo.run(args)
    return _kubelet(args)


if __name__ == "__main__":
    sys.exit(main())
