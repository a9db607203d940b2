"""Convergence under sustained API faults: per-request retries against whole-reconcile retries.

Each configuration gets a fresh kubeemu and redis-server with ``--crs`` DeviceServers in
``--namespaces`` namespaces, created before the operator starts (the watcher and one worker
process, ``--concurrency`` threads). Then the fault mix of issue 18 is switched on for
``--fault-seconds``: every request delayed by 0 to ``--jitter-ms`` ms, ~5 % answered 500, ~5 %
503 and ~5 % 429 with a Retry-After of 1 s, and every ``--drop-every`` seconds all watches
are dropped (the first drop also compacts the history, so the watcher must relist). Then the
faults stop. Measured from kubeemu's own counters and the CRs' status, per configuration:

* CRs Running when the faults stop, and the time until all are Running (from the start, and
  after the faults stopped);
* the operator's request rate during the faults, beside the fault-free row's rate (a retry
  policy that hammers a failing server shows here).

Configurations: fault-free; with faults and the workers' defaults (4 retries per request,
per-key backoff capped at 60 s); with faults and ``TANGO_OPERATOR_API_RETRIES=0`` and a 300 s
cap (how the operator behaved before: every failed request fails the whole reconcile).
The bench's own reads go through the faults too; it polls with retries.

Run: ``make bench-faults`` (= ``python -m tests.bench.bench_faults``); prints a Markdown
table and, unless ``--no-doc``, writes it into docs/benchmarks.md between the
``bench_faults`` markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any

from kubernetes import client

from devstack.runner.plan import free_port
from tango_operator import crd
from tests.bench.bench_reconcile import Cluster, _spawn, _stop, cluster
from tests.bench.report import write_section
from tests.support.workers import WorkerPool

HEADER = (
    "| configuration | Running when faults stop | all Running after start (s) | "
    "all Running after faults stop (s) | operator requests/s during faults | "
    "API retries (worker) | injected faults |\n|---|---|---|---|---|---|---|"
)


@dataclass
class Row:
    name: str
    running_at_stop: int
    crs: int
    after_start: float | None
    after_stop: float | None
    request_rate: float
    api_retries: int
    injected: int

    def line(self) -> str:
        def seconds(value: float | None) -> str:
            return f"{value:.1f}" if value is not None else "not within the deadline"

        return (
            f"| {self.name} | {self.running_at_stop} / {self.crs} | {seconds(self.after_start)} "
            f"| {seconds(self.after_stop)} | {self.request_rate:.1f} | {self.api_retries} "
            f"| {self.injected} |"
        )


def fault_rules(jitter_ms: int) -> list[dict[str, Any]]:
    """The issue's mix: latency jitter, 500 and 503 at 5 % each, 429 at 5 % (Retry-After 1 s)."""
    return [
        {"rate": 1.0, "latency_ms": 0, "latency_jitter_ms": jitter_ms},
        {"rate": 0.05, "code": 500, "message": "bench: injected 500"},
        {"rate": 0.05 / 0.95, "code": 503, "message": "bench: injected 503"},
        {"rate": 0.05 / 0.90, "code": 429, "retry_after_seconds": 1},
    ]


def running(world: Cluster) -> int:
    """DeviceServers reporting Running; the LIST itself is retried through the faults."""
    custom = client.CustomObjectsApi(world.api)
    for _ in range(50):
        try:
            listed = custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "deviceservers")
        except client.ApiException:
            time.sleep(0.1)
            continue
        return sum((i.get("status") or {}).get("state") == "Running" for i in listed["items"])
    raise RuntimeError("the bench could not list DeviceServers through the faults")


def _worker_retries(metrics_port: int) -> int:
    """The worker's ``tango_operator_api_request_retries_total``, summed over its labels."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return -1
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("tango_operator_api_request_retries_total{")
    )


def run(options: argparse.Namespace, name: str, faults: bool, env: dict[str, str]) -> Row:
    metrics_port = free_port()
    with cluster(options.crs, options.namespaces, 0) as world:
        pool = WorkerPool(
            kubeconfig=world.emu.kubeconfig,
            redis_url=world.redis.url,
            workdir=world.workdir,
            concurrency=options.concurrency,
            processes=1,
            pool="threads",
            extra_env={**env, "TANGO_OPERATOR_METRICS_PORT": str(metrics_port)},
        )
        watcher_env = {**pool.environment(), "TANGO_OPERATOR_RESYNC_SECONDS": "3600"}
        argv = [sys.executable, "-m", "watcher", "--log-level", "WARNING"]
        if faults:
            world.emu.set_faults(fault_rules(options.jitter_ms), seed=options.seed)
        mark = world.emu.mark()
        started = time.monotonic()
        pool.start()
        watcher = _spawn(
            argv, {**watcher_env, "TANGO_OPERATOR_IDENTITY": "b"}, world.workdir / "w.log"
        )
        try:
            after_start = after_stop = None
            next_drop, drops = started + options.drop_every, 0
            while time.monotonic() - started < options.fault_seconds:
                if faults and time.monotonic() >= next_drop:
                    world.emu.drop_watches()
                    if drops == 0:
                        world.emu.compact()
                    drops, next_drop = drops + 1, next_drop + options.drop_every
                count = running(world)
                if count == options.crs and after_start is None:
                    after_start = time.monotonic() - started
                    if not faults:
                        break
                time.sleep(0.5)
            during = time.monotonic() - started
            requests = len(world.operator_audit(mark))  # all but LISTs of DeviceServers
            injected = int(world.emu.stats().get("faultsInjected", 0))
            at_stop = running(world)
            world.emu.clear_faults()
            stopped = time.monotonic()
            while at_stop < options.crs and time.monotonic() - stopped < options.deadline:
                time.sleep(0.5)
                if running(world) == options.crs:
                    after_stop = time.monotonic() - stopped
                    after_start = after_start or time.monotonic() - started
                    break
            if at_stop == options.crs:
                after_stop = 0.0
            retries = _worker_retries(metrics_port)
        finally:
            _stop(watcher)
            pool.stop()
        return Row(
            name,
            at_stop,
            options.crs,
            after_start,
            after_stop,
            requests / during,
            retries,
            injected,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crs", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fault-seconds", type=float, default=120.0)
    parser.add_argument("--jitter-ms", type=int, default=100)
    parser.add_argument("--drop-every", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--no-doc", action="store_true")
    options = parser.parse_args()
    configurations = [
        ("fault-free, defaults", False, {}),
        ("faults, defaults (4 retries per request, backoff cap 60 s)", True, {}),
        (
            "faults, no request retries, backoff cap 300 s (before)",
            True,
            {"TANGO_OPERATOR_API_RETRIES": "0", "TANGO_OPERATOR_BACKOFF_CAP_SECONDS": "300"},
        ),
    ]
    rows = []
    for name, faults, env in configurations:
        row = run(options, name, faults, env)
        print(row.line(), flush=True)
        rows.append(row)
    command = "python -m tests.bench.bench_faults " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(options).items() if k != "no_doc"
    )
    table = "\n".join(
        [
            f"`{command}` ({date.today().isoformat()}, {os.cpu_count()} cores, one run each):",
            "",
            HEADER,
            *(row.line() for row in rows),
        ]
    )
    print(table)
    if not options.no_doc:
        write_section("bench_faults", table)


if __name__ == "__main__":
    main()
