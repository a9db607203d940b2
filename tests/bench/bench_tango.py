"""Benchmark: dependency checks per second one worker process sustains, cache on vs off.

Run by ``make bench-tango`` (and ``make bench``); not part of the test suite. Starts a real
DataBaseds — PyTango's (sqlite) and, when Debian's mariadb-server, tango-db and tango-test
are installed, the C++ one on a MariaDB server of its own (a throw-away ``mariadbd``,
tests/support/mariadb_server.py) — and one real PyTango device server (``EchoServer``) with
``--devices`` devices, then calls ``PyTangoPort.device_ready`` on them round-robin from this
single process for ``--seconds`` per row, as a storm of reconciles would: once with the
probe cache off (every check is a DB ``DbImportDevice`` plus a ping of the device) and once
with the default cache (1.5 s TTL). DB round trips are counted by the DataBaseds itself (its
``Timing_calls`` counters). Each setting runs ``--repeats`` times (3), the two interleaved.
Prints a table and writes ``docs/benchmarks.md``'s section
between its markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.report import spread, write_section
from tests.support.mariadb_server import MariaDBServer
from tests.support.tango_db import CppDatabase, PyTangoDatabase, TangoDatabase, cpp_unavailable
from tests.support.tango_servers import TangoServers
from workers.tango import PyTangoPort

HEADER = (
    "| DataBaseds | cache | devices | runs x seconds | checks/s | DB round trips "
    "| per 1,000 checks | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class Run:
    """One timed run of checks."""

    checks: int
    seconds: float
    round_trips: int
    latencies: list[float]


@dataclass
class Result:
    """One DataBaseds and cache setting over its runs."""

    database: str
    cache: str
    devices: int
    runs: list[Run] = field(default_factory=list)

    @property
    def row(self) -> str:
        """Checks/s as median (min-max) of the runs; latencies pooled over every check."""
        ordered = sorted(latency for run in self.runs for latency in run.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        checks = sum(run.checks for run in self.runs)
        trips = sum(run.round_trips for run in self.runs)
        rates = [run.checks / run.seconds for run in self.runs]
        seconds = statistics.median(run.seconds for run in self.runs)
        return (
            f"| {self.database} | {self.cache} | {self.devices} | "
            f"{len(self.runs)} x {seconds:.1f} | {spread(rates, 0)} | {trips:,} | "
            f"{_per_thousand(trips, checks)} | "
            f"{statistics.median(ordered) * 1000:.3f} | {p99 * 1000:.3f} |"
        )


def _per_thousand(count: int, total: int) -> str:
    value = 1000 * count / total
    return f"{value:,.0f}" if value >= 10 else f"{value:.3f}"


def run_checks(
    db: TangoDatabase, port: PyTangoPort, devices: list[str], seconds: float
) -> tuple[int, float, int, list[float]]:
    for device in devices:  # connections made before the clock starts
        assert port.device_ready(db.tango_host, device).ok, device
    port.cache.clear()
    before = db.call_counts()["DbImportDevice"]
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    index = 0
    while True:
        begin = time.perf_counter()
        if begin >= deadline:
            break
        probe = port.device_ready(db.tango_host, devices[index % len(devices)])
        latencies.append(time.perf_counter() - begin)
        if not probe.ok:
            raise RuntimeError(f"dependency check failed during the run: {probe.reason}")
        index += 1
    elapsed = time.perf_counter() - started
    return index, elapsed, db.call_counts()["DbImportDevice"] - before, latencies


def bench_database(
    db: TangoDatabase, label: str, devices: int, seconds: float, repeats: int
) -> list[Result]:
    """Both cache settings on ``db``, ``repeats`` runs each, interleaved."""
    with tempfile.TemporaryDirectory(prefix="bench-tango-") as scratch:
        servers = TangoServers(db, Path(scratch))
        names = [f"bench/echo/{i}" for i in range(devices)]
        servers.register("EchoServer/bench", "Echo", names)
        try:
            servers.start_echo("bench")
            settings = (("off", 0.0), ("on (1.5 s)", 1.5))
            results = [Result(label, cache, devices) for cache, _ in settings]
            for _ in range(repeats):
                for result, (_, ttl) in zip(results, settings, strict=True):
                    port = PyTangoPort(cache_ttl=ttl)
                    result.runs.append(Run(*run_checks(db, port, names, seconds)))
            for result in results:
                print(result.row, flush=True)
            return results
        finally:
            servers.stop_all()


def main() -> None:
    """Every DataBaseds that can run here; print the table, write it to the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each cache setting")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()

    print(HEADER, flush=True)
    results: list[Result] = []
    arguments = (options.devices, options.seconds, options.repeats)
    with PyTangoDatabase() as db:
        results += bench_database(db, "PyTango (sqlite)", *arguments)
    reason = cpp_unavailable()
    if reason is None:
        with MariaDBServer() as mariadb, CppDatabase(mariadb) as cpp:
            results += bench_database(cpp, "C++ (MariaDB)", *arguments)
    else:
        print(f"C++ DataBaseds skipped: {reason}", flush=True)
    if not options.no_doc:
        command = (
            f"python -m tests.bench.bench_tango --devices {options.devices} --seconds "
            f"{options.seconds:g} --repeats {options.repeats}"
        )
        table = "\n".join([HEADER, *(r.row for r in results)])
        write_section(
            "bench_tango",
            f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; the cache "
            "settings interleaved; checks/s as median (min-max) of the runs, round trips and "
            f"latencies over all of them):\n\n{table}",
        )


if __name__ == "__main__":
    main()
