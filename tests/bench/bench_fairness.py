"""Benchmark: one namespace floods, another applies one DeviceServer — how long does it wait?

Run by ``make bench`` (``make bench-fairness`` alone); not part of the test suite. Real
parts: kubeemu (StatefulSets instant), redis-server, ``python -m watcher`` and
``tango-operator worker`` processes; the TANGO side is the stand-in (always ready), since
what is measured is the queue. 2,000 DeviceServers are created in namespace ``flood``
before the watcher starts, so its first list enqueues them all at once; once the first
of them are Running, one DeviceServer is created in namespace ``late``. Measured, with fair
dispatch and with FIFO dispatch side by side: seconds from creating the late one to its
Running, how many of the flood were Running by then, the longest Celery queue seen, and
the time for the whole flood, and kubeemu's CPU share over it. The workers are the chart's
defaults (threads pool, 8 reconciles in flight per process), started and ready before the
clock starts with the watcher; the states are followed through one watch (``StateWatch``),
not LISTs of the flood. Each mode runs ``--repeats`` times, the modes interleaved, every
run on a fresh world. Prints a table and writes ``docs/benchmarks.md``'s section.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from kubernetes import client, config

from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tests.bench.procfs import cpu_seconds
from tests.bench.report import spread, write_section
from tests.support.crs import StateWatch, create_device_server
from tests.support.workers import REPO, WorkerPool, celery_queue_length

HEADER = (
    "| dispatch | runs | flood CRs | worker processes x threads | late CR Running after (s) | "
    "flood Running by then | longest Celery queue | whole flood Running after (s) | "
    "kubeemu CPU (of one core) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
"""Every mode over its runs: median (min-max) of each, the longest queue of any run."""


@dataclass
class Result:
    """One run of one dispatch mode."""

    mode: str
    flood: int
    workers: int
    late_seconds: float
    flood_running_then: int
    longest_queue: int
    flood_seconds: float
    kubeemu_cpu: float
    """kubeemu's CPU seconds per second from the watcher's start to the whole flood Running."""

    def line(self) -> str:
        """What the run measured, printed as it ends."""
        return (
            f"{self.mode}: late CR Running after {self.late_seconds:.1f} s with "
            f"{self.flood_running_then} of the flood Running; longest Celery queue "
            f"{self.longest_queue}; whole flood after {self.flood_seconds:.1f} s; kubeemu "
            f"CPU {self.kubeemu_cpu:.0%}"
        )


def summary_row(runs: Sequence[Result], threads: int) -> str:
    """One mode over its runs."""
    first = runs[0]
    return (
        f"| {first.mode} | {len(runs)} | {first.flood} | {first.workers} x {threads} | "
        f"{spread([r.late_seconds for r in runs])} | "
        f"{spread([r.flood_running_then for r in runs], 0)} | "
        f"{max(r.longest_queue for r in runs)} | {spread([r.flood_seconds for r in runs])} | "
        f"{median([r.kubeemu_cpu for r in runs]) * 100:.0f} % |"
    )


def run_once(
    mode: str, flood: int, workers: int, threads: int, head_start: int, timeout: float
) -> Result:
    """A fresh world: the flood, the operator, the late CR; measured until the flood is done."""
    with tempfile.TemporaryDirectory(prefix="bench-fair-") as scratch:
        workdir = Path(scratch)
        (workdir / "redis").mkdir()
        with KubeEmu.start(workdir / "emu") as emu, RedisServer(workdir / "redis") as redis:
            api_client = config.new_client_from_config(config_file=str(emu.kubeconfig))
            install_crds(api_client)
            core = client.CoreV1Api(api_client)
            for namespace in ("flood", "late"):
                core.create_namespace({"metadata": {"name": namespace}})
            for number in range(flood):
                create_device_server(api_client, f"f{number}", "flood")
            pool = WorkerPool(
                kubeconfig=emu.kubeconfig,
                redis_url=redis.url,
                workdir=workdir,
                concurrency=threads,
                processes=workers,
                pool="threads",
                test_hooks=False,
                extra_env={"TANGO_OPERATOR_DISPATCH": mode},
            )
            pool.start()
            pool.wait_ready()  # a deployed operator's workers run before the flood arrives
            emu_pid = emu.process.pid  # type: ignore[union-attr]
            emu_cpu = cpu_seconds(emu_pid)
            states = StateWatch(api_client)
            started = time.monotonic()
            watcher = subprocess.Popen(
                [sys.executable, "-m", "watcher", "--log-level", "WARNING"],
                env={**pool.environment(), "TANGO_OPERATOR_IDENTITY": "bench"},
                stdout=(workdir / "watcher.log").open("ab"),
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
            connection = redis.client()
            longest = 0
            try:
                with states:
                    if not states.wait_for(lambda s: s.count("flood") >= head_start, timeout):
                        raise TimeoutError(f"{mode}: {head_start} of the flood not Running")
                    late_created = time.monotonic()
                    create_device_server(api_client, "late", "late")
                    while not states.wait_for(lambda s: s.count("late") >= 1, 0.1):
                        longest = max(longest, celery_queue_length(connection))
                        if time.monotonic() - late_created > timeout:
                            raise TimeoutError(f"{mode}: the late CR not Running in {timeout}s")
                    late_seconds = time.monotonic() - late_created
                    flood_then = states.count("flood")
                    while not states.wait_for(lambda s: s.count("flood") >= flood, 0.5):
                        longest = max(longest, celery_queue_length(connection))
                        if time.monotonic() - started > timeout:
                            raise TimeoutError(f"{mode}: the flood not Running in {timeout}s")
                    flood_seconds = time.monotonic() - started
                    emu_share = (cpu_seconds(emu_pid) - emu_cpu) / flood_seconds
            finally:
                connection.close()
                watcher.terminate()
                watcher.wait(timeout=20)
                pool.stop()
                api_client.close()
            return Result(
                mode, flood, workers, late_seconds, flood_then, longest, flood_seconds, emu_share
            )


def main() -> None:
    """Run every mode ``--repeats`` times, interleaved; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--threads", type=int, default=8, help="reconciles in flight per process (the chart's)"
    )
    parser.add_argument("--modes", nargs="+", default=["fair", "fifo"])
    parser.add_argument(
        "--head-start", type=int, default=20, help="flood CRs Running before the late one"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode, interleaved")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    runs: dict[str, list[Result]] = {mode: [] for mode in options.modes}
    for _ in range(options.repeats):
        for mode in options.modes:
            result = run_once(
                mode,
                options.flood,
                options.workers,
                options.threads,
                options.head_start,
                options.timeout,
            )
            runs[mode].append(result)
            print(result.line(), flush=True)
    table = "\n".join([HEADER, *(summary_row(r, options.threads) for r in runs.values())])
    print(f"\n{table}", flush=True)
    if options.no_doc:
        return
    command = (
        f"python -m tests.bench.bench_fairness --flood {options.flood} --workers "
        f"{options.workers} --threads {options.threads} --modes {' '.join(options.modes)} "
        f"--head-start {options.head_start} --repeats {options.repeats}"
    )
    write_section(
        "bench_fairness",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; the modes "
        "interleaved, each run on a fresh kubeemu and redis-server; median (min-max) of the "
        f"runs, the longest queue of any run):\n\n{table}",
    )


if __name__ == "__main__":
    main()
