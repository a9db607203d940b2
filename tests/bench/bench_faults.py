"""Convergence under sustained API faults: per-request retries against whole-reconcile retries.

Each run gets a fresh kubeemu and redis-server with ``--crs`` DeviceServers in
``--namespaces`` namespaces, created before the operator starts (the watcher and one worker
process, ``--concurrency`` threads, the TANGO stand-in). The fault mix of issue 18 is on from
the start: every request delayed by 0 to ``--jitter-ms`` ms, ~5 % answered 500, ~5 % 503 and
~5 % 429 with a Retry-After of 1 s, and every ``--drop-every`` seconds all watches dropped
(the first drop also compacts the history, so the watcher must relist). The faults stop when
every CR is Running, or after ``--fault-seconds``. Measured per run, from kubeemu's own
counters, the CRs' status and the worker's /metrics:

* the time until every CR is Running under the faults (or, if not within ``--fault-seconds``,
  after they stopped);
* the operator's API requests per CR until then (what retrying costs the API server; the
  fault-free row is the floor);
* the request retries the worker made (``tango_operator_api_request_retries_total``) and the
  faults kubeemu injected.

Each configuration runs ``--repeats`` times (seeds ``--seed``, ``--seed`` + 1, ...); the table
gives median (min-max).

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
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any

from kubernetes import client

from devstack.ports import free_port
from tango_operator import crd
from tests.bench.bench_reconcile import Cluster, _spawn, _stop, cluster
from tests.bench.report import write_section
from tests.support.workers import WorkerPool

HEADER = (
    "| configuration | runs | all Running under faults | time to all Running (s): median "
    "(min-max) | API requests per CR until then: median (min-max) | request retries by the "
    "worker (sum) | injected faults (sum) |\n|---|---|---|---|---|---|---|"
)


@dataclass
class Row:
    """One run of one configuration."""

    converged: float | None
    """Seconds from the start to every CR Running while the faults were on (None: not)."""
    after_stop: float | None
    """Seconds after the faults stopped, when they had not converged under faults."""
    requests_per_cr: float
    api_retries: int
    injected: int


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def line(name: str, rows: list[Row]) -> str:
    converged = [r.converged for r in rows if r.converged is not None]
    late = [r.after_stop for r in rows if r.converged is None and r.after_stop is not None]
    under_faults = f"{len(converged)} of {len(rows)}"
    if late:
        under_faults += f" (the others {_spread(late)} s after the faults stopped)"
    return (
        f"| {name} | {len(rows)} | {under_faults} | {_spread(converged)} "
        f"| {_spread([r.requests_per_cr for r in rows])} | {sum(r.api_retries for r in rows)} "
        f"| {sum(r.injected for r in rows)} |"
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


def run(options: argparse.Namespace, faults: bool, env: dict[str, str], seed: int) -> Row:
    """One run: the operator starts with the faults on; they stop once all are Running."""
    metrics_port = free_port()
    with cluster(options.crs, options.namespaces, 0) as world:
        pool = WorkerPool(
            kubeconfig=world.emu.kubeconfig,
            redis_url=world.redis.url,
            workdir=world.workdir,
            concurrency=options.concurrency,
            processes=1,
            pool="threads",
            test_hooks=False,
            extra_env={**env, "TANGO_OPERATOR_METRICS_PORT": str(metrics_port)},
        )
        watcher_env = {
            **pool.environment(),
            "TANGO_OPERATOR_RESYNC_SECONDS": "3600",
            "TANGO_OPERATOR_IDENTITY": "bench",
        }
        del watcher_env["TANGO_OPERATOR_METRICS_PORT"]  # the worker's port
        argv = [sys.executable, "-m", "watcher", "--log-level", "WARNING"]
        if faults:
            world.emu.set_faults(fault_rules(options.jitter_ms), seed=seed)
        mark = world.emu.mark()
        started = time.monotonic()
        pool.start()
        watcher = _spawn(argv, watcher_env, world.workdir / "w.log")
        try:
            converged = after_stop = None
            next_drop, drops = started + options.drop_every, 0
            while time.monotonic() - started < options.fault_seconds:
                if faults and time.monotonic() >= next_drop:
                    world.emu.drop_watches()
                    if drops == 0:
                        world.emu.compact()
                    drops, next_drop = drops + 1, next_drop + options.drop_every
                if running(world) == options.crs:
                    converged = time.monotonic() - started
                    break
                time.sleep(0.25)
            requests = len(world.operator_audit(mark))  # all but LISTs of DeviceServers
            injected = int(world.emu.stats().get("faultsInjected", 0))
            world.emu.clear_faults()
            stopped = time.monotonic()
            while converged is None and time.monotonic() - stopped < options.deadline:
                if running(world) == options.crs:
                    after_stop = time.monotonic() - stopped
                    break
                time.sleep(0.5)
            retries = _worker_retries(metrics_port)
        finally:
            _stop(watcher)
            pool.stop()
        return Row(converged, after_stop, requests / options.crs, retries, injected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crs", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fault-seconds", type=float, default=120.0)
    parser.add_argument("--jitter-ms", type=int, default=100)
    parser.add_argument("--drop-every", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
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
    lines = []
    for name, faults, env in configurations:
        rows = [run(options, faults, env, options.seed + n) for n in range(options.repeats)]
        lines.append(line(name, rows))
        print(lines[-1], flush=True)
    command = "python -m tests.bench.bench_faults " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(options).items() if k != "no_doc"
    )
    table = "\n".join(
        [
            f"`{command}` ({date.today().isoformat()}, {os.cpu_count()} cores; the faults stop "
            "when every CR is Running, or after --fault-seconds):",
            "",
            HEADER,
            *lines,
        ]
    )
    print(table)
    if not options.no_doc:
        write_section("bench_faults", table)


if __name__ == "__main__":
    main()
