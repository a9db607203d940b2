"""Command line: ``python -m kubeemu --port 0 --kubeconfig PATH [--fault ...]``.

Starts the emulated apiserver on 127.0.0.1, writes a kubeconfig pointing at the port it really
bound (port 0 picks a free one), prints one ``kubeemu listening on http://...`` line for whoever
started it, and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from kubeemu.controllers import ControllerSettings
from kubeemu.emulator import Emulator, EmulatorSettings
from kubeemu.faults import parse_cli_fault
from kubeemu.kubeconfig import write_kubeconfig
from kubeemu.server import app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeemu", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument(
        "--statefulsets",
        choices=["instant", "manual", "off"],
        default="instant",
        help="fake StatefulSet controller mode (default instant)",
    )
    parser.add_argument("--no-gc", action="store_true", help="disable the garbage collector")
    parser.add_argument(
        "--no-scheduler", action="store_true", help="bind no pod to a Node (the scheduler stand-in)"
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between watch bookmarks (default 60)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="RULE",
        help="inject faults, e.g. 'code=500,rate=0.1,verbs=create|patch' "
        "or 'latency_ms=20'; repeatable",
    )
    parser.add_argument("--seed", type=int, help="seed of the fault injector's random numbers")
    parser.add_argument("--log-level", default="WARNING")
    return parser


GC_INTERVAL_SECONDS = 30.0
"""How often the server runs the cycle collector, which it otherwise keeps off."""


def _tune_garbage_collector() -> None:
    """Freeze what start-up built, and collect cycles on a timer instead of by allocation counts.

    Every request allocates thousands of dicts and lists (JSON copies), and each write keeps a
    new object (and the watch history its predecessor): CPython's allocation-driven collector
    would traverse those survivors again and again, a tenth of the server's time under load.
    They hold no reference cycles — reference counting frees them — and a load test leaves
    only a few thousand cyclic objects a minute (aiohttp and asyncio bookkeeping), which a full
    collection every :data:`GC_INTERVAL_SECONDS` reclaims.  Frozen objects (the Kubernetes
    OpenAPI definitions alone are hundreds of thousands) are never traversed again.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


async def _collect_cycles() -> None:
    """Run the cycle collector every :data:`GC_INTERVAL_SECONDS` until cancelled."""
    while True:
        await asyncio.sleep(GC_INTERVAL_SECONDS)
        gc.collect()


async def _serve(args: argparse.Namespace) -> None:
    settings = EmulatorSettings(bookmark_interval=args.bookmark_interval)
    controllers = ControllerSettings(
        statefulset=args.statefulsets,
        garbage_collector=not args.no_gc,
        scheduler=not args.no_scheduler,
    )
    emulator = Emulator(settings, seed=args.seed, controller_settings=controllers)
    emulator.faults.set_rules([parse_cli_fault(rule) for rule in args.fault])
    runner = web.AppRunner(app(emulator), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, shutdown_timeout=1.0)
    await site.start()
    _tune_garbage_collector()
    collector = asyncio.get_running_loop().create_task(_collect_cycles())
    port = runner.addresses[0][1]
    url = f"http://{args.host}:{port}"
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, url)
    print(f"kubeemu listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    collector.cancel()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
