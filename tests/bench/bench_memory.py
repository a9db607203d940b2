"""Benchmark: resident memory with thousands of reconciled DeviceServers, beside kopf.

Run by ``make bench-memory`` (``python -m tests.bench.bench_memory``); not part of the test
suite. For each size (``--crs``, default 2,000 and 10,000), a fresh kubeemu and redis-server
with that many DeviceServers in ``--namespaces`` namespaces, created before the operator
starts; then the kopf baseline (``tests.bench.kopf_baseline``, 32 handler threads so that
it finishes sooner; its memory does not depend on the thread count) and tango-operator (the
watcher and one worker process with ``--concurrency`` threads), each on its own fresh
world, reconcile every CR to Running; once the cluster is quiet the resident memory of
every process is read from /proc. Prints the table and writes it to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from tests.bench.bench_reconcile import (
    Cluster,
    _spawn,
    _stop,
    cluster,
)
from tests.bench.procfs import tree_rss_mib
from tests.bench.report import write_section
from tests.support.workers import REPO, WorkerPool

HEADER = (
    "| DeviceServers | kopf (MiB) | tango-operator: watcher + worker (MiB) | "
    "tango-operator / kopf | watcher alone (MiB) |\n|---|---|---|---|---|"
)


@dataclass
class Row:
    """One size's figures."""

    crs: int
    kopf: float
    watcher: float
    worker: float

    def line(self) -> str:
        """The table row."""
        ours = self.watcher + self.worker
        return (
            f"| {self.crs:,} | {self.kopf:.0f} | {ours:.0f} ({self.watcher:.0f} + "
            f"{self.worker:.0f}) | {ours / self.kopf:.2f} | {self.watcher:.0f} |"
        )


def kopf_rss(world: Cluster, deadline: float) -> float:
    """The kopf baseline's resident memory once it has brought every CR to Running."""
    env = {
        **os.environ,
        "KUBECONFIG": str(world.emu.kubeconfig),
        "PYTHONPATH": str(REPO),
        "KOPF_MAX_WORKERS": "32",
    }
    mark = world.emu.mark()
    kopf = _spawn(
        [sys.executable, "-m", "tests.bench.kopf_baseline"], env, world.workdir / "kopf.log"
    )
    try:
        world.wait_running(deadline)
        world.wait_quiet(mark)
        return tree_rss_mib(kopf.pid)
    finally:
        _stop(kopf)


def operator_rss(world: Cluster, concurrency: int, deadline: float) -> tuple[float, float]:
    """(watcher, worker) resident memory once every CR is Running."""
    pool = WorkerPool(
        kubeconfig=world.emu.kubeconfig,
        redis_url=world.redis.url,
        workdir=world.workdir,
        concurrency=concurrency,
        processes=1,
        pool="threads",
        test_hooks=False,
        extra_env={"TANGO_OPERATOR_DISPATCH": "fair"},
    )
    env = {**pool.environment(), "TANGO_OPERATOR_IDENTITY": "bench-memory"}
    mark = world.emu.mark()
    pool.start()
    watcher = _spawn(
        [sys.executable, "-m", "watcher", "--log-level", "WARNING"], env, world.workdir / "w.log"
    )
    try:
        world.wait_running(deadline)
        world.wait_quiet(mark)
        return tree_rss_mib(watcher.pid), sum(tree_rss_mib(p.pid) for p in pool.running)
    finally:
        _stop(watcher)
        pool.stop()


def main() -> None:
    """Measure every size, print the table, update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16, help="threads of the worker")
    parser.add_argument("--deadline", type=float, default=1800.0)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--in-flight",
        type=int,
        nargs="*",
        default=[4, 16, 64],
        help="reconciles in flight (threads) of the worker for the cost-per-reconcile table",
    )
    parser.add_argument("--in-flight-crs", type=int, default=1000)
    options = parser.parse_args()
    print(HEADER, flush=True)
    rows = []
    for crs in options.crs:
        with cluster(crs, options.namespaces, 0) as world:
            kopf = kopf_rss(world, options.deadline)
        with cluster(crs, options.namespaces, 0) as world:
            watcher, worker = operator_rss(world, options.concurrency, options.deadline)
        rows.append(Row(crs, kopf, watcher, worker))
        print(rows[-1].line(), flush=True)
    in_flight = in_flight_table(options) if options.in_flight else ""
    if options.no_doc:
        return
    command = (
        f"python -m tests.bench.bench_memory --crs {' '.join(map(str, options.crs))} "
        f"--namespaces {options.namespaces} --concurrency {options.concurrency} "
        f"--in-flight {' '.join(map(str, options.in_flight))} "
        f"--in-flight-crs {options.in_flight_crs}"
    )
    body = (
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores):\n\n{HEADER}\n"
        + "\n".join(row.line() for row in rows)
        + (f"\n\n{in_flight}" if in_flight else "")
    )
    write_section("bench_memory", body)


def in_flight_table(options: argparse.Namespace) -> str:
    """The worker's memory by reconciles in flight, and what one more costs."""
    header = (
        "| reconciles in flight (threads of the one worker) | worker (MiB) | "
        "MiB per reconcile in flight beyond the first row |\n|---|---|---|"
    )
    print(f"\n{options.in_flight_crs} DeviceServers\n{header}", flush=True)
    lines, first = [], None
    for threads in options.in_flight:
        with cluster(options.in_flight_crs, options.namespaces, 20) as world:
            _, worker = operator_rss(world, threads, options.deadline)
        per = "" if first is None else f"{(worker - first[1]) / (threads - first[0]):.2f}"
        first = first or (threads, worker)
        lines.append(f"| {threads} | {worker:.0f} | {per} |")
        print(lines[-1], flush=True)
    return header + "\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
