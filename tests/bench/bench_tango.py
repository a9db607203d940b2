"""Benchmark: dependency checks per second one worker process sustains, cache on vs off.

Run by ``make bench-tango`` (and ``make bench``); not part of the test suite. Starts a real
DataBaseds — PyTango's (sqlite) and, when Debian's mariadb-server, tango-db and tango-test
are installed, the C++ one on a MariaDB server of its own (a throw-away ``mariadbd``,
tests/support/mariadb_server.py) — and one real PyTango device server (``EchoServer``) with
``--devices`` devices, then calls ``PyTangoPort.device_ready`` on them round-robin from this
single process for ``--seconds`` per row, as a storm of reconciles would: once with the
probe cache off (every check is a DB ``DbImportDevice`` plus a ping of the device) and once
with the default cache (1.5 s TTL). DB round trips are counted by the DataBaseds itself (its
``Timing_calls`` counters). Prints a table and writes ``docs/benchmarks.md``'s section
between its markers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.mariadb_server import MariaDBServer
from tests.support.tango_db import CppDatabase, PyTangoDatabase, TangoDatabase, cpp_unavailable
from tests.support.tango_servers import TangoServers
from tests.support.workers import REPO
from workers.tango import PyTangoPort

DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_tango:begin -->", "<!-- bench_tango:end -->"
HEADER = (
    "| DataBaseds | cache | devices | seconds | checks | checks/s | DB round trips "
    "| per 1,000 checks | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|---|---|---|---|---|"
)


@dataclass
class Result:
    database: str
    cache: str
    devices: int
    checks: int
    seconds: float
    round_trips: int
    latencies: list[float]

    @property
    def row(self) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"| {self.database} | {self.cache} | {self.devices} | {self.seconds:.1f} | "
            f"{self.checks:,} | {self.checks / self.seconds:,.0f} | {self.round_trips:,} | "
            f"{_per_thousand(self.round_trips, self.checks)} | "
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


def bench_database(db: TangoDatabase, label: str, devices: int, seconds: float) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-tango-") as scratch:
        servers = TangoServers(db, Path(scratch))
        names = [f"bench/echo/{i}" for i in range(devices)]
        servers.register("EchoServer/bench", "Echo", names)
        try:
            servers.start_echo("bench")
            results = []
            for cache, ttl in (("off", 0.0), ("on (1.5 s)", 1.5)):
                port = PyTangoPort(cache_ttl=ttl)
                checks, elapsed, trips, latencies = run_checks(db, port, names, seconds)
                results.append(Result(label, cache, devices, checks, elapsed, trips, latencies))
                print(results[-1].row, flush=True)
            return results
        finally:
            servers.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()

    print(HEADER, flush=True)
    results: list[Result] = []
    with PyTangoDatabase() as db:
        results += bench_database(db, "PyTango (sqlite)", options.devices, options.seconds)
    reason = cpp_unavailable()
    if reason is None:
        with MariaDBServer() as mariadb, CppDatabase(mariadb) as cpp:
            results += bench_database(cpp, "C++ (MariaDB)", options.devices, options.seconds)
    else:
        print(f"C++ DataBaseds skipped: {reason}", flush=True)
    if not options.no_doc:
        table = "\n".join([HEADER, *(r.row for r in results)])
        text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN not in text:
            text += f"\n{BEGIN}\n{END}\n"
        before, _, rest = text.partition(BEGIN)
        _, _, after = rest.partition(END)
        DOC.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")


if __name__ == "__main__":
    main()
