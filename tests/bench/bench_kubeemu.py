"""Load driver: kubeemu's CPU per request under the operator benchmark's request mix.

Run by ``make bench-kubeemu`` (``python -m tests.bench.bench_kubeemu``); a measurement, not a
test. It starts a fresh kubeemu (StatefulSets instant, audit log on, as in
``tests.bench.bench_reconcile``), installs the CRDs, creates the namespaces and the
DeviceServers, opens the watches the operator's watcher keeps (``watcher.main.RESOURCES``:
the two custom kinds, and the four kinds of child with its label selector), then replays,
per DeviceServer, what one reconcile of the operator sends — through the operator's own
client facade (``workers.kube.Kube``, the official ``kubernetes`` client underneath):

1. GET of the DeviceServer;
2. JSON merge PATCH of its ``metadata.finalizers`` (with its resourceVersion);
3. server-side apply (``fieldManager=tango-operator``, ``force=true``) of its ConfigMap,
   Service and StatefulSet, rendered by ``workers.rendering`` as the kopf baseline does;
4. merge PATCH of its ``/status``;
5. POST of a core/v1 Event.

By default (``--order phased``) every step runs for all DeviceServers before the next one
starts, from ``--threads`` client threads, and kubeemu's CPU time (``/proc/<pid>/stat``) is
read around each step: the table gives CPU ms per request of each kind, including what the
request sets off in kubeemu (watch events, the StatefulSet controller's pods and status).
``--order interleaved`` runs the steps per DeviceServer, as the operator does, and gives
only the total. ``--rounds 2`` replays the mix again (the applies are then no-ops).
``--py-spy FILE`` records a raw py-spy profile of kubeemu during the mix (of the thread
holding the GIL; ``BENCH_PY_SPY_ARGS`` replaces that ``--gil`` with other py-spy options).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config

from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.bench.procfs import CLOCK_TICKS, cpu_seconds, rss_mib
from tests.bench.report import spread, write_section
from tests.support.crs import create_device_server
from watcher.main import RESOURCES
from workers import rendering
from workers.kube import Kube

JsonDict = dict[str, Any]
KINDS = (
    "get",
    "finalizers",
    "apply ConfigMap",
    "apply Service",
    "apply StatefulSet",
    "status",
    "event",
)
SETTLE_SECONDS = 0.25
"""kubeemu is idle when it spent at most one clock tick in this time."""
SETTLE_LIMIT_SECONDS = 20.0


@dataclass
class Step:
    """One kind of request: how many were sent, and kubeemu's CPU seconds while they ran."""

    kind: str
    requests: int = 0
    cpu: float = 0.0
    seconds: float = 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU ms of kubeemu per request of this kind."""
        return 1000 * self.cpu / self.requests if self.requests else 0.0


@dataclass
class CustomResource:
    """One DeviceServer and what the mix has learnt of it so far."""

    namespace: str
    name: str
    body: JsonDict = field(default_factory=dict)
    children: list[JsonDict] = field(default_factory=list)
    """Its ConfigMap, Service and StatefulSet, rendered once it is created."""


class Watches:
    """The watcher's watch streams, each read to the end by a daemon thread."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._stop = threading.Event()
        self.events = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        """Open every watch, from the current resourceVersion of its collection."""
        for resource in RESOURCES:
            path = resource.type.path()
            query: list[tuple[str, str]] = []
            if resource.label_selector:
                query.append(("labelSelector", resource.label_selector))
            version = self._list_version(path, query)
            thread = threading.Thread(
                target=self._follow,
                args=(
                    path,
                    [
                        *query,
                        ("watch", "true"),
                        ("allowWatchBookmarks", "true"),
                        ("resourceVersion", version),
                        ("timeoutSeconds", "3600"),
                    ],
                ),
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _get(self, path: str, query: list[tuple[str, str]]) -> Any:
        return self._api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
        )

    def _list_version(self, path: str, query: list[tuple[str, str]]) -> str:
        """The resourceVersion of a LIST, where the watch starts (as a reflector does)."""
        return str(json.loads(self._get(path, query).data)["metadata"]["resourceVersion"])

    def _follow(self, path: str, query: list[tuple[str, str]]) -> None:
        response = self._get(path, query)
        try:
            for chunk in response.stream(amt=None):
                with self._lock:
                    self.events += chunk.count(b"\n")
                if self._stop.is_set():
                    break
        except (OSError, urllib3.exceptions.HTTPError):
            if not self._stop.is_set():
                raise
        finally:
            response.release_conn()

    def stop(self) -> None:
        self._stop.set()


def _requests(cr: CustomResource, kube: Kube) -> dict[str, Callable[[], None]]:
    """The mix for one DeviceServer, step by step."""

    def get() -> None:
        found = kube.get_custom(crd.Kind.DEVICE_SERVER, cr.namespace, cr.name)
        assert found is not None
        cr.body = found

    def finalizers() -> None:
        cr.body = kube.set_finalizers(cr.body, [crd.FINALIZER])

    def apply(index: int) -> Callable[[], None]:
        def run() -> None:
            kube.apply(cr.children[index])

        return run

    def status() -> None:
        patch = {"status": {"state": "Running", "message": f"ready at {time.time():.3f}"}}
        cr.body = kube.merge_patch(cr.body, patch, subresource="status")

    def event() -> None:
        kube.emit_event(cr.body, event_type="Normal", reason="Running", message="Running")

    return {
        "get": get,
        "finalizers": finalizers,
        "apply ConfigMap": apply(0),
        "apply Service": apply(1),
        "apply StatefulSet": apply(2),
        "status": status,
        "event": event,
    }


def _render(body: JsonDict) -> list[JsonDict]:
    """ConfigMap, Service and StatefulSet of a DeviceServer, as the kopf baseline renders them."""
    resource = {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": dict(body["metadata"]),
        "spec": dict(body["spec"]),
    }
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(
        spec.databaseds, namespace=body["metadata"]["namespace"], cluster_domain=spec.cluster_domain
    )
    manifests = rendering.render_device_server(resource, spec, tango_host=tango_host, replicas=1)
    order = {"ConfigMap": 0, "Service": 1, "StatefulSet": 2}
    return sorted(manifests, key=lambda m: order[m["kind"]])


def _run_threads(jobs: list[Callable[[], None]], threads: int) -> None:
    """Run ``jobs`` from ``threads`` threads; re-raise the first failure."""
    work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    for job in jobs:
        work.put(job)
    failures: list[BaseException] = []

    def worker() -> None:
        while not failures:
            try:
                job = work.get_nowait()
            except queue.Empty:
                return
            try:
                job()
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]


def _settled_cpu(pid: int) -> float:
    """The CPU seconds of kubeemu once it is idle (its controllers and watches caught up)."""
    deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_SECONDS)
        now = cpu_seconds(pid)
        if now - last <= 1 / CLOCK_TICKS:
            return now
        last = now
    return last


def run_mix(
    pid: int, crs: list[CustomResource], kube: Kube, threads: int, order: str
) -> list[Step]:
    """One round of the mix; the steps measured (one ``all`` step when interleaved)."""
    plans = [_requests(cr, kube) for cr in crs]
    steps: list[Step] = []
    if order == "interleaved":

        def reconcile(plan: dict[str, Callable[[], None]]) -> Callable[[], None]:
            def run() -> None:
                for kind in KINDS:
                    plan[kind]()

            return run

        step = Step("all (interleaved)", requests=len(crs) * len(KINDS))
        before, started = _settled_cpu(pid), time.monotonic()
        _run_threads([reconcile(plan) for plan in plans], threads)
        step.seconds = time.monotonic() - started
        step.cpu = _settled_cpu(pid) - before
        return [step]
    for kind in KINDS:
        step = Step(kind, requests=len(crs))
        before, started = _settled_cpu(pid), time.monotonic()
        _run_threads([plan[kind] for plan in plans], threads)
        step.seconds = time.monotonic() - started
        step.cpu = _settled_cpu(pid) - before
        steps.append(step)
    return steps


def table(steps: list[Step]) -> str:
    """The Markdown table of the steps, with a total line."""
    lines = [
        "| requests | count | kubeemu CPU s | CPU ms per request | wall s |",
        "|---|---|---|---|---|",
    ]
    for step in steps:
        lines.append(
            f"| {step.kind} | {step.requests} | {step.cpu:.2f} | {step.cpu_ms:.2f} | "
            f"{step.seconds:.1f} |"
        )
    total = Step("all", sum(s.requests for s in steps), sum(s.cpu for s in steps))
    total.seconds = sum(s.seconds for s in steps)
    lines.append(
        f"| **all** | {total.requests} | {total.cpu:.2f} | **{total.cpu_ms:.2f}** | "
        f"{total.seconds:.1f} |"
    )
    return "\n".join(lines)


@contextmanager
def _py_spy(pid: int, output: Path | None) -> Iterator[None]:
    if output is None:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "-p", str(pid), "-f", "raw", "-r", "200"]
    argv += os.environ.get("BENCH_PY_SPY_ARGS", "--gil").split()
    process = subprocess.Popen([*argv, "-o", str(output)], stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        process.wait(timeout=60)


@contextmanager
def emulator(crs: int, namespaces: int) -> Iterator[tuple[KubeEmu, list[CustomResource]]]:
    """A fresh kubeemu with the CRDs, the namespaces and the DeviceServers; stopped after."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-kubeemu-") as scratch,
        KubeEmu.start(Path(scratch) / "emu") as emu,
    ):
        api = config.new_client_from_config(config_file=str(emu.kubeconfig))
        try:
            install_crds(api)
            core = client.CoreV1Api(api)
            for index in range(namespaces):
                core.create_namespace({"metadata": {"name": f"team-{index:02d}"}})
            resources = [
                CustomResource(f"team-{i % namespaces:02d}", f"ds-{i:04d}") for i in range(crs)
            ]
            for cr in resources:
                # rendered now, not while kubeemu's CPU is measured: the children depend on
                # the DeviceServer's name, uid and spec only
                cr.children = _render(create_device_server(api, cr.name, cr.namespace))
            yield emu, resources
        finally:
            api.close()


def _client(emu: KubeEmu, connections: int) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(emu.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


def repeated_table(runs: list[list[list[Step]]]) -> str:
    """CPU ms per request of each kind and round: median (min-max) over the repeats."""
    rounds = len(runs[0])
    header = "| requests | " + " | ".join(
        f"round {number} CPU ms per request" for number in range(1, rounds + 1)
    )
    lines = [header + " |", "|---|" + "---|" * rounds]
    kinds = [step.kind for step in runs[0][0]]
    for index, kind in enumerate(kinds):
        cells = [spread([run[number][index].cpu_ms for run in runs], 2) for number in range(rounds)]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    totals = [
        spread(
            [
                1000
                * sum(s.cpu for s in run[number])
                / max(1, sum(s.requests for s in run[number]))
                for run in runs
            ],
            2,
        )
        for number in range(rounds)
    ]
    lines.append("| **all** | " + " | ".join(f"**{cell}**" for cell in totals) + " |")
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> list[list[Step]]:
    """One fresh kubeemu, ``--rounds`` replays of the mix; the steps of each round."""
    rounds: list[list[Step]] = []
    with emulator(args.crs, args.namespaces) as (emu, crs):
        assert emu.process is not None
        pid = emu.process.pid
        watches = Watches(_client(emu, len(RESOURCES) + 2))
        watches.open()
        if args.latency:
            emu.set_faults([{"latency_ms": args.latency}])
        kube = Kube(_client(emu, args.threads + 4))
        mark = emu.mark()
        with _py_spy(pid, args.py_spy):
            for round_number in range(1, args.rounds + 1):
                steps = run_mix(pid, crs, kube, args.threads, args.order)
                rounds.append(steps)
                print(
                    f"\nround {round_number}: {args.crs} DeviceServers, {args.threads} "
                    f"threads, latency {args.latency:g} ms, {args.order}"
                )
                print(table(steps))
        watches.stop()
        print(
            f"\naudit records: {len(emu.audit(mark))}; watch lines: {watches.events}; "
            f"kubeemu RSS: {rss_mib(pid):.0f} MiB"
        )
    return rounds


def main(argv: list[str] | None = None) -> int:
    """Run the mix ``--repeats`` times on fresh emulators; print, and write the docs' table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", type=int, default=500, help="DeviceServers (default 500)")
    parser.add_argument("--namespaces", type=int, default=50, help="namespaces (default 50)")
    parser.add_argument("--threads", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--latency", type=float, default=0.0, help="injected ms per request")
    parser.add_argument("--rounds", type=int, default=2, help="replays of the mix (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh emulators (default 3)")
    parser.add_argument("--order", choices=["phased", "interleaved"], default="phased")
    parser.add_argument("--py-spy", type=Path, help="write a raw py-spy profile of kubeemu here")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    runs = [measure(args) for _ in range(args.repeats)]
    summary = repeated_table(runs)
    print(f"\n{args.repeats} runs, median (min-max):\n{summary}")
    if args.no_doc or args.order != "phased" or args.py_spy:
        return 0
    command = (
        f"python -m tests.bench.bench_kubeemu --crs {args.crs} --namespaces {args.namespaces} "
        f"--threads {args.threads} --rounds {args.rounds} --repeats {args.repeats}"
    )
    write_section(
        "bench_kubeemu",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; each run on a "
        "fresh kubeemu; kubeemu's CPU ms per request, median (min-max) of the runs):"
        f"\n\n{summary}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
