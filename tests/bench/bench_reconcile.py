"""Benchmark: DeviceServers created at once → all Running, tango-operator beside kopf.

Run by ``make bench`` (``python -m tests.bench.bench_reconcile``); not part of the test suite.
In one invocation, on one machine, each configuration gets a fresh kubeemu (every request
delayed by ``--latency`` ms, StatefulSets ready at once) and a fresh redis-server, the same
CRs in the same namespaces, created before the operator starts:

- the baseline (``tests.bench.kopf_baseline``): one kopf process with its default handler
  pool, and with a tuned one;
- tango-operator: the watcher and 1, 2, 4 worker processes (threads pool, ``--concurrency``
  reconciles in flight each), TANGO played by the stand-in of ``tests.support.standin_tango``.

The clock starts when the process that lists the CRs starts: kopf's one process, or the
watcher. The worker processes are started before it and the clock waits until each has
logged that it is ready, as a worker Deployment is up before DeviceServers arrive; their
start-up (wall and CPU seconds) has a column of its own and is not in the CR/s or the CPU
per CR. Both sides pay the start-up of one cold process, the one that lists.

For each it prints the time until every CR is Running, CR/s, API requests and mutations per
CR (kubeemu's audit log, the bench's own polling excluded), kubeemu's CPU share of one core
(its event loop is single-threaded: near 100 % means the emulator, not the operator, is the
limit), and the resident memory of every process. Then it fails the operator over (the
watcher restarted; for kopf, its process) and counts the writes and reads per CR that costs.
Writes the table to ``docs/benchmarks.md`` and a plot to ``docs/bench-reconcile.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, config
from matplotlib.figure import Figure
from redis import Redis

from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.bench.procfs import cpu_seconds, process_tree, tree_rss_mib
from tests.bench.report import median, spread, write_section
from tests.support.crs import StateWatch, create_device_server
from tests.support.standin_tango import reconcile_starts
from tests.support.workers import REPO, WorkerPool

DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class Result:
    """One configuration's figures."""

    name: str
    crs: int
    seconds: float
    requests: int
    mutations: int
    kubeemu_cpu: float
    """kubeemu's CPU seconds per second of the run (1.0: one core saturated)."""
    rss_mib: dict[str, float]
    operator_cpu: float = 0.0
    """CPU seconds of every operator process during the run."""
    kubeemu_cpu_seconds: float = 0.0
    failover_requests: int = 0
    failover_mutations: int = 0
    failover_reconciles: int | None = None
    reconciles: int | None = None
    median_to_running: float = 0.0
    """Seconds from the start until the median CR was Running."""
    worker_startup: tuple[float, float] | None = None
    """Seconds from spawning the worker processes until all were ready, and their CPU seconds
    then (before the clock started); None for kopf."""

    @property
    def rate(self) -> float:
        """CRs brought to Running per second."""
        return self.crs / self.seconds

    def row(self) -> str:
        """The table row."""
        memory = " + ".join(f"{name} {mib:.0f}" for name, mib in self.rss_mib.items())
        total = sum(self.rss_mib.values())
        reconciles = "" if self.reconciles is None else f"{self.reconciles / self.crs:.2f}"
        failover_runs = (
            "" if self.failover_reconciles is None else f"{self.failover_reconciles / self.crs:.2f}"
        )
        per_cr = 1000 / self.crs
        cpu = f"{self.operator_cpu * per_cr:.1f} / {self.kubeemu_cpu_seconds * per_cr:.1f}"
        startup = (
            ""
            if self.worker_startup is None
            else f"{self.worker_startup[0]:.1f} / {self.worker_startup[1]:.1f}"
        )
        return (
            f"| {self.name} | {startup} | {self.median_to_running:.1f} | {self.seconds:.1f} | "
            f"{self.rate:.1f} | {reconciles} | "
            f"{self.requests / self.crs:.2f} | {self.mutations / self.crs:.2f} | "
            f"{self.kubeemu_cpu * 100:.0f} % | {cpu} | {self.failover_mutations / self.crs:.2f} / "
            f"{self.failover_requests / self.crs:.2f} / {failover_runs} | {total:.0f} ({memory}) |"
        )


HEADER = (
    "| configuration | workers ready before the clock: s / CPU s | median CR Running after (s) "
    "| time to all Running (s) | CR/s | reconciles per CR | "
    "API requests per CR | mutations per CR | kubeemu CPU (of one core) | "
    "CPU ms per CR: operator / kubeemu | "
    "failover: writes / requests / reconciles per CR | RSS MiB (per process) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)
"""The header of one run's row (printed as each run ends)."""

SUMMARY_HEADER = (
    "| configuration | runs | workers ready before the clock: s / CPU s | "
    "median CR Running after (s) | time to all Running (s) | CR/s | reconciles per CR | "
    "API requests per CR | mutations per CR | kubeemu CPU (of one core) | "
    "CPU ms per CR: operator / kubeemu | "
    "failover: writes / requests / reconciles per CR | RSS MiB (per process) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)
"""The header of the table of every configuration over its runs."""


def summary_row(runs: Sequence[Result]) -> str:
    """One configuration over its runs: time and CR/s as median (min-max), the rest medians."""
    first = runs[0]
    per_cr = 1000 / first.crs

    def mid(values: Iterable[float], digits: int = 2) -> str:
        return f"{median(list(values)):.{digits}f}"

    reconciles = "" if first.reconciles is None else mid((r.reconciles or 0) / r.crs for r in runs)
    failover_runs = (
        ""
        if first.failover_reconciles is None
        else mid((r.failover_reconciles or 0) / r.crs for r in runs)
    )
    memory = " + ".join(
        f"{name} {median([r.rss_mib.get(name, 0.0) for r in runs]):.0f}" for name in first.rss_mib
    )
    total = median([sum(r.rss_mib.values()) for r in runs])
    emu_share = median([r.kubeemu_cpu for r in runs]) * 100
    cpu = (
        f"{median([r.operator_cpu * per_cr for r in runs]):.1f} / "
        f"{median([r.kubeemu_cpu_seconds * per_cr for r in runs]):.1f}"
    )
    failover = (
        f"{mid(r.failover_mutations / r.crs for r in runs)} / "
        f"{mid(r.failover_requests / r.crs for r in runs)} / {failover_runs}"
    )
    startup = (
        ""
        if first.worker_startup is None
        else f"{mid(((r.worker_startup or (0.0, 0.0))[0] for r in runs), 1)} / "
        f"{mid(((r.worker_startup or (0.0, 0.0))[1] for r in runs), 1)}"
    )
    return (
        f"| {first.name} | {len(runs)} | {startup} | "
        f"{spread([r.median_to_running for r in runs])} | {spread([r.seconds for r in runs])} | "
        f"{spread([r.rate for r in runs])} | {reconciles} | "
        f"{mid(r.requests / r.crs for r in runs)} | {mid(r.mutations / r.crs for r in runs)} | "
        f"{emu_share:.0f} % | {cpu} | {failover} | {total:.0f} ({memory}) |"
    )


@dataclass
class Cluster:
    """A fresh kubeemu and redis-server with the CRs created, latency switched on after."""

    emu: KubeEmu
    redis: RedisServer
    api: client.ApiClient
    workdir: Path
    crs: int
    names: list[tuple[str, str]] = field(default_factory=list)
    median_to_running: float = 0.0
    """Of the last ``wait_running``: the median CR's seconds to Running."""

    def wait_running(self, deadline: float) -> float:
        """Seconds until every CR is Running (raises after ``deadline`` seconds).

        Follows a watch (``StateWatch``) rather than polling LISTs of every CR: a poll of a
        thousand objects costs the emulator more than the operator's own requests do. The
        median of the CRs' times to Running is left in ``median_to_running``.
        """
        started = time.monotonic()
        with StateWatch(self.api) as states:
            if not states.wait_for(lambda s: s.count() >= self.crs, deadline):
                stuck = states.not_in("Running")
                raise RuntimeError(
                    f"{len(stuck)} of {self.crs} not Running after {deadline}s: "
                    + ", ".join(f"{name} ({state})" for name, state in sorted(stuck.items())[:20])
                )
            seconds = time.monotonic() - started  # before the watch thread is joined
            self.median_to_running = median([when - started for when in states.first_running()])
            return seconds

    def operator_audit(self, mark: int) -> list[dict[str, Any]]:
        """Audit records since ``mark``, without LISTs of DeviceServers.

        The bench polls with them; the operator's own (the watcher's first list) would add
        one request for all CRs, nothing per CR.
        """
        return [
            r
            for r in self.emu.audit(mark)
            if not ("deviceservers" in r["path"] and r["verb"] == "list")
        ]

    def after_restart(self, mark: int) -> list[dict[str, Any]]:
        """What a restarted operator did until the cluster was quiet again."""
        time.sleep(5.0)  # it lists, and offers or handles every object
        self.wait_quiet(mark)
        return self.operator_audit(mark)

    def wait_quiet(self, mark: int, quiet: float = 3.0, deadline: float = 120.0) -> None:
        """Until nothing but lists, watches and Lease renewals reached kubeemu for ``quiet`` s."""
        started = time.monotonic()
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() - started < deadline:
            count = len(
                [
                    r
                    for r in self.emu.audit(mark)
                    if r["verb"] not in ("list", "watch") and "/leases" not in r["path"]
                ]
            )
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                return
            time.sleep(0.25)


def _result(
    name: str,
    world: Cluster,
    seconds: float,
    audit: list[dict[str, Any]],
    after: list[dict[str, Any]],
    rss: dict[str, float],
    operator_cpu: float,
    emu_cpu: float,
) -> Result:
    """One configuration's figures from its audit records and measurements."""
    return Result(
        name=name,
        crs=world.crs,
        seconds=seconds,
        requests=len(audit),
        mutations=sum(1 for r in audit if r["changed"]),
        kubeemu_cpu=emu_cpu / seconds,
        rss_mib=rss,
        operator_cpu=operator_cpu,
        kubeemu_cpu_seconds=emu_cpu,
        failover_requests=len([r for r in after if r["verb"] not in ("list", "watch")]),
        failover_mutations=sum(1 for r in after if r["changed"]),
        median_to_running=world.median_to_running,
    )


@contextmanager
def cluster(crs: int, namespaces: int, latency_ms: int) -> Iterator[Cluster]:
    """The world of one configuration, torn down afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        workdir = Path(scratch)
        (workdir / "redis").mkdir()
        with KubeEmu.start(workdir / "emu", []) as emu, RedisServer(workdir / "redis") as redis:
            api = config.new_client_from_config(config_file=str(emu.kubeconfig))
            install_crds(api)
            core = client.CoreV1Api(api)
            for index in range(namespaces):
                core.create_namespace({"metadata": {"name": f"team-{index:02d}"}})
            names = [(f"ds-{i:04d}", f"team-{i % namespaces:02d}") for i in range(crs)]
            for name, namespace in names:
                create_device_server(api, name, namespace)
            if latency_ms:
                emu.set_faults([{"latency_ms": latency_ms}])
            try:
                yield Cluster(emu, redis, api, workdir, crs, names)
            except Exception:
                kept = keep_logs(workdir)
                dump_redis(redis.url, kept / "redis-dump.txt")
                dump_api(emu, api, kept)
                print(f"run failed: its logs are kept in {kept}", flush=True)
                raise
            finally:
                api.close()


def not_running_items(api: client.ApiClient) -> list[dict[str, Any]]:
    """The DeviceServers not reporting Running, as the API lists them (one LIST)."""
    custom = client.CustomObjectsApi(api)
    listed = custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "deviceservers")
    return [i for i in listed["items"] if (i.get("status") or {}).get("state") != "Running"]


KEPT_LOGS = REPO / ".cache" / "bench-reconcile"


def keep_logs(workdir: Path) -> Path:
    """Copy a failed run's logs out of its scratch directory; returns where to.

    The operator's, kopf's, kubeemu's audit log and the reconcile traces: the scratch
    directory is deleted when the run ends.
    """
    kept = KEPT_LOGS / time.strftime("%Y%m%d-%H%M%S")
    shutil.copytree(workdir, kept, ignore=shutil.ignore_patterns("*.rdb", "*.sock"))
    return kept


def dump_api(emu: KubeEmu, api: client.ApiClient, kept: Path) -> None:
    """The audit log of kubeemu and the StatefulSets of the CRs not Running, as JSON lines."""
    with (kept / "audit.jsonl").open("w") as out:
        for record in emu.audit(0):
            out.write(json.dumps(record) + "\n")
    apps = client.AppsV1Api(api)
    with (kept / "stuck.jsonl").open("w") as out:
        for item in not_running_items(api):
            meta = item["metadata"]
            statefulset = apps.read_namespaced_stateful_set(meta["name"], meta["namespace"])
            out.write(json.dumps(item) + "\n")
            out.write(json.dumps(api.sanitize_for_serialization(statefulset)) + "\n")


def dump_redis(url: str, path: Path) -> None:
    """Every key of the run's Redis with its value, as text: the queue's state at the failure."""
    with Redis.from_url(url, decode_responses=True) as redis, path.open("w") as out:
        readers: dict[str, Callable[[str], object]] = {
            "string": redis.get,
            "hash": redis.hgetall,
            "set": redis.smembers,
            "list": lambda name: redis.lrange(name, 0, -1),
            "zset": lambda name: redis.zrange(name, 0, -1, withscores=True),
        }
        for name in sorted(redis.scan_iter(count=1000)):
            kind = str(redis.type(name))
            read = readers.get(kind)
            out.write(f"{name} ({kind}): {read(name) if read else '?'}\n")


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_kopf(
    world: Cluster, name: str, max_workers: int | None, deadline: float, *, failover: bool = True
) -> Result:
    """The kopf baseline on ``world`` (``failover=False``: no restart after convergence)."""
    env = {**os.environ, "KUBECONFIG": str(world.emu.kubeconfig), "PYTHONPATH": str(REPO)}
    if max_workers:
        env["KOPF_MAX_WORKERS"] = str(max_workers)
    argv = [sys.executable, "-m", "tests.bench.kopf_baseline"]
    emu_pid = world.emu.process.pid  # type: ignore[union-attr]
    mark, cpu = world.emu.mark(), cpu_seconds(emu_pid)
    kopf = _spawn(argv, env, world.workdir / "kopf.log")
    try:
        seconds = world.wait_running(deadline)
        emu_cpu = cpu_seconds(emu_pid) - cpu
        operator_cpu = sum(cpu_seconds(pid) for pid in process_tree(kopf.pid))
        world.wait_quiet(mark)
        audit = world.operator_audit(mark)
        rss = {"kopf": tree_rss_mib(kopf.pid)}
        after: list[dict[str, Any]] = []
        if failover:
            _stop(kopf)
            restarted = world.emu.mark()
            kopf = _spawn(argv, env, world.workdir / "kopf.log")
            after = world.after_restart(restarted)  # kopf lists and runs its resume handlers
    finally:
        _stop(kopf)
    return _result(name, world, seconds, audit, after, rss, operator_cpu, emu_cpu)


def run_operator(
    world: Cluster,
    processes: int,
    concurrency: int,
    deadline: float,
    dispatch: str,
    *,
    failover: bool = True,
) -> Result:
    """tango-operator on ``world``: the watcher and ``processes`` worker processes.

    ``failover=False``: the watcher is not restarted after convergence.
    """
    pool = WorkerPool(
        kubeconfig=world.emu.kubeconfig,
        redis_url=world.redis.url,
        workdir=world.workdir,
        concurrency=concurrency,
        processes=processes,
        pool="threads",
        test_hooks=False,
        extra_env={"TANGO_OPERATOR_DISPATCH": dispatch},
    )
    env = {**pool.environment(), "TANGO_OPERATOR_RESYNC_SECONDS": "3600"}
    watcher_argv = [sys.executable, "-m", "watcher", "--log-level", "WARNING"]
    emu_pid = world.emu.process.pid  # type: ignore[union-attr]
    spawned = time.monotonic()
    pool.start()
    # A worker Deployment is up before DeviceServers arrive: the clock starts once every
    # worker is ready, with the watcher, which (like kopf's one process) starts cold and lists.
    pool.wait_ready()
    worker_startup = time.monotonic() - spawned
    worker_startup_cpu = sum(
        cpu_seconds(pid) for process in pool.running for pid in process_tree(process.pid)
    )
    mark, cpu = world.emu.mark(), cpu_seconds(emu_pid)
    watcher = _spawn(
        watcher_argv, {**env, "TANGO_OPERATOR_IDENTITY": "bench-1"}, world.workdir / "w1.log"
    )
    redis_pid = world.redis.process.pid  # type: ignore[union-attr]
    before = {pid: cpu_seconds(pid) for pid in [redis_pid, *_operator_pids(pool, watcher)]}
    try:
        seconds = world.wait_running(deadline)
        emu_cpu = cpu_seconds(emu_pid) - cpu
        operator_cpu = sum(
            cpu_seconds(pid) - before.get(pid, 0.0)
            for pid in [redis_pid, *_operator_pids(pool, watcher)]
        )
        world.wait_quiet(mark)
        audit = world.operator_audit(mark)
        reconciles = len(reconcile_starts(pool.trace))
        rss = {"watcher": tree_rss_mib(watcher.pid)}
        for index, process in enumerate(pool.running):
            rss[f"worker{index}"] = tree_rss_mib(process.pid)
        after: list[dict[str, Any]] = []
        failover_reconciles = 0
        if failover:
            _stop(watcher)  # releases the Lease: the next one takes over at once
            restarted = world.emu.mark()
            watcher = _spawn(
                watcher_argv,
                {**env, "TANGO_OPERATOR_IDENTITY": "bench-2"},
                world.workdir / "w2.log",
            )
            after = world.after_restart(restarted)
            failover_reconciles = len(reconcile_starts(pool.trace)) - reconciles
    finally:
        _stop(watcher)
        pool.stop()
    result = _result(
        f"tango-operator, {processes} x {concurrency} threads",
        world,
        seconds,
        audit,
        after,
        rss,
        operator_cpu,
        emu_cpu,
    )
    result.failover_reconciles, result.reconciles = failover_reconciles, reconciles
    result.worker_startup = (worker_startup, worker_startup_cpu)
    return result


def _operator_pids(pool: WorkerPool, watcher: subprocess.Popen[bytes]) -> list[int]:
    """The watcher and every worker process (supervisors and Celery) of one run."""
    pids = process_tree(watcher.pid)
    for process in pool.running:
        pids += process_tree(process.pid)
    return pids


def plot(runs: dict[str, list[Result]], path: Path) -> None:
    """CR/s and memory of each configuration, side by side: medians, bars from min to max."""
    figure = Figure(figsize=(10, 4.5))
    rate_axes, memory_axes = figure.subplots(1, 2)
    names = list(runs)
    labels = [
        name.replace("tango-operator, ", "tango-operator ").removesuffix(" threads")
        for name in names
    ]
    colors = ["#999999" if name.startswith("kopf") else "#2a6fb0" for name in names]
    measures: list[tuple[Any, Callable[[Result], float]]] = [
        (rate_axes, lambda r: r.rate),
        (memory_axes, lambda r: sum(r.rss_mib.values())),
    ]
    for axes, measure in measures:
        values = [[measure(r) for r in runs[name]] for name in names]
        middles = [median(v) for v in values]
        errors = [
            [m - min(v) for m, v in zip(middles, values, strict=True)],
            [max(v) - m for m, v in zip(middles, values, strict=True)],
        ]
        axes.barh(labels, middles, xerr=errors, color=colors, capsize=3)
        axes.invert_yaxis()
    rate_axes.set_xlabel("DeviceServers to Running per second")
    memory_axes.set_xlabel("resident memory of every process (MiB)")
    memory_axes.set_yticklabels([])
    first = next(iter(runs.values()))
    figure.suptitle(
        f"{first[0].crs} DeviceServers, {len(first)} runs each (median, min-max); grey: kopf "
        "baseline, blue: tango-operator (processes x threads)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def scaling_table(options: argparse.Namespace, crs: int, latency: int, concurrency: int) -> str:
    """tango-operator with 1, 2, 4 … worker processes where the latency, not the CPU, limits.

    Few reconciles in flight per process and a slower API server, so that the processes wait
    on the network and the machine's two cores stay far from busy; each process count runs
    ``--repeats`` times, interleaved; the table (printed, and returned for the docs) shows
    what adding worker processes buys there, from the medians.
    """
    header = (
        f"| worker processes (x {concurrency} threads) | runs | time to all Running (s) | "
        "CR/s | x previous (medians) | operator CPU (of one core) |\n|---|---|---|---|---|---|"
    )
    print(f"\nscaling: {crs} DeviceServers, {latency} ms per request", flush=True)
    runs: dict[int, list[Result]] = {processes: [] for processes in options.workers}
    for repeat in range(options.repeats):
        for processes in options.workers:
            with cluster(crs, options.namespaces, latency) as world:
                result = run_operator(world, processes, concurrency, options.deadline, "fair")
            runs[processes].append(result)
            print(
                f"  run {repeat + 1}: {processes} processes: {result.seconds:.1f} s, "
                f"{result.rate:.1f} CR/s",
                flush=True,
            )
    lines, previous = [], None
    for processes, results in runs.items():
        rate = median([r.rate for r in results])
        factor = "" if previous is None else f"{rate / previous:.2f}"
        busy = median([r.operator_cpu / r.seconds for r in results])
        lines.append(
            f"| {processes} | {len(results)} | {spread([r.seconds for r in results])} | "
            f"{spread([r.rate for r in results])} | {factor} | {busy * 100:.0f} % |"
        )
        previous = rate
    table = f"{header}\n" + "\n".join(lines)
    print(table, flush=True)
    command = (
        f"python -m tests.bench.bench_reconcile --scaling {crs} {latency} {concurrency} "
        f"--workers {' '.join(map(str, options.workers))} --repeats {options.repeats}"
    )
    return f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores):\n\n{table}"


def main() -> None:
    """Run every configuration, print the table, update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--latency", type=int, default=20, help="ms added to every request")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--kopf-workers", type=int, default=32, help="the tuned kopf row")
    parser.add_argument("--no-kopf", action="store_true", help="skip the baseline rows")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--dispatch", choices=["fair", "fifo"], default="fair")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--scaling",
        type=int,
        nargs=3,
        default=[200, 100, 2],
        metavar=("CRS", "LATENCY", "CONCURRENCY"),
        help="the latency-bound scaling table (0 0 0 skips it)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of every configuration, interleaved (the table gives median and min-max)",
    )
    options = parser.parse_args()
    print(
        f"{options.crs} DeviceServers in {options.namespaces} namespaces, "
        f"{options.latency} ms per request, {options.repeats} runs of each configuration",
        flush=True,
    )
    print(HEADER, flush=True)
    configurations: list[tuple[str, Callable[[Cluster], Result]]] = []
    if not options.no_kopf:
        for name, workers in (
            ("kopf, defaults", None),
            (f"kopf, {options.kopf_workers} handler threads", options.kopf_workers),
        ):
            configurations.append(
                (name, partial(run_kopf, name=name, max_workers=workers, deadline=options.deadline))
            )
    for processes in options.workers:
        configurations.append(
            (
                f"tango-operator, {processes} x {options.concurrency} threads",
                partial(
                    run_operator,
                    processes=processes,
                    concurrency=options.concurrency,
                    deadline=options.deadline,
                    dispatch=options.dispatch,
                ),
            )
        )
    runs: dict[str, list[Result]] = {name: [] for name, _ in configurations}
    for _ in range(options.repeats):  # interleaved: a drift of the machine hits every row alike
        for name, run in configurations:
            with cluster(options.crs, options.namespaces, options.latency) as world:
                runs[name].append(run(world))
            print(runs[name][-1].row(), flush=True)
    table = f"{SUMMARY_HEADER}\n" + "\n".join(summary_row(r) for r in runs.values())
    print(f"\n{table}", flush=True)
    scaling = scaling_table(options, *options.scaling) if options.scaling[0] else ""
    if options.no_doc:
        return
    if scaling:
        write_section("bench_reconcile_scaling", scaling)
    command = (
        f"python -m tests.bench.bench_reconcile --crs {options.crs} --namespaces "
        f"{options.namespaces} --latency {options.latency} --workers "
        f"{' '.join(map(str, options.workers))} --concurrency {options.concurrency} "
        f"--repeats {options.repeats}"
    )
    body = (
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; every "
        f"configuration run {options.repeats} times, interleaved, each run on a fresh kubeemu "
        "and redis-server; time and CR/s as median (min-max), the other columns "
        f"medians):\n\n{table}"
    )
    write_section("bench_reconcile", body)
    plot(runs, DOCS / "bench-reconcile.png")


if __name__ == "__main__":
    main()
