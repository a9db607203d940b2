"""Benchmark: 1,000 DeviceServers in 50 namespaces created at once → all Running.

Run by ``make bench``; not part of the test suite. For 1, 2 and 4 worker processes and
kubeemu latencies of 0 and 20 ms per request it measures the time until every CR is
Running, reconciles per second, and API requests and mutations per CR (kubeemu's audit
log), and the watcher's resident memory. Real parts: kubeemu, redis-server, ``python -m
watcher`` and ``tango-operator worker`` processes; the TANGO side is the stand-in
(everything ready). Prints a table and writes
``docs/benchmarks.md``'s section between its markers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.bench.report import write_section
from tests.support.crs import create_device_server
from tests.support.standin_tango import reconcile_starts
from tests.support.workers import REPO, WorkerPool


@dataclass
class Result:
    workers: int
    latency_ms: int
    crs: int
    seconds: float
    reconciles: int
    requests: int
    mutations: int
    watcher_rss_mib: float

    @property
    def row(self) -> str:
        return (
            f"| {self.workers} | {self.latency_ms} | {self.crs} | {self.seconds:.1f} | "
            f"{self.reconciles / self.seconds:.1f} | {self.requests / self.crs:.1f} | "
            f"{self.mutations / self.crs:.1f} | {self.watcher_rss_mib:.0f} |"
        )


def run_once(
    workers: int, latency_ms: int, crs: int, namespaces: int, dispatch: str = "fair"
) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        workdir = Path(scratch)
        args = ["--fault", f"latency_ms={latency_ms}"] if latency_ms else []
        (workdir / "redis").mkdir()
        with KubeEmu.start(workdir / "emu", args) as emu, RedisServer(workdir / "redis") as redis:
            api_client = config.new_client_from_config(config_file=str(emu.kubeconfig))
            install_crds(api_client)
            core = client.CoreV1Api(api_client)
            custom = client.CustomObjectsApi(api_client)
            pool = WorkerPool(
                kubeconfig=emu.kubeconfig,
                redis_url=redis.url,
                workdir=workdir,
                concurrency=1,
                processes=workers,
                extra_env={"TANGO_OPERATOR_DISPATCH": dispatch},
            )
            names = [(f"ds-{i:04d}", f"team-{i % namespaces:02d}") for i in range(crs)]
            for index in range(namespaces):
                core.create_namespace({"metadata": {"name": f"team-{index:02d}"}})
            for name, namespace in names:
                create_device_server(api_client, name, namespace)
            pool.start()
            mark = emu.mark()
            started = time.monotonic()
            watcher = subprocess.Popen(
                [sys.executable, "-m", "watcher", "--log-level", "WARNING"],
                env={**pool.environment(), "TANGO_OPERATOR_IDENTITY": "bench"},
                stdout=(workdir / "watcher.log").open("ab"),
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
            while True:
                listed = custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "deviceservers")[
                    "items"
                ]
                running = sum((i.get("status") or {}).get("state") == "Running" for i in listed)
                if running == crs:
                    break
                time.sleep(1.0)
            seconds = time.monotonic() - started
            rss = _rss_mib(watcher.pid)
            watcher.terminate()
            watcher.wait(timeout=20)
            pool.stop()
            audit = [
                r
                for r in emu.audit(mark)
                if "deviceservers" not in r["path"] or r["verb"] != "list"
            ]
            reconciles = len(reconcile_starts(pool.trace))
            api_client.close()
            return Result(
                workers,
                latency_ms,
                crs,
                seconds,
                reconciles,
                len(audit),
                sum(1 for r in audit if r["changed"]),
                rss,
            )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 20])
    parser.add_argument(
        "--dispatch", choices=["fair", "fifo"], default="fair", help="TANGO_OPERATOR_DISPATCH"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    header = (
        "| worker processes | API latency (ms) | CRs | time to all Running (s) | "
        "reconciles/s | API requests per CR | mutations per CR | watcher RSS (MiB) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    print(header, flush=True)
    results = []
    for latency in options.latency:
        for workers in options.workers:
            result = run_once(workers, latency, options.crs, options.namespaces, options.dispatch)
            results.append(result)
            print(result.row, flush=True)
    speedups = [r.seconds for r in results]
    print(f"median time {statistics.median(speedups):.1f}s", flush=True)
    if not options.no_doc:
        write_section("bench_reconcile", "\n".join([header, *(r.row for r in results)]))


if __name__ == "__main__":
    main()
