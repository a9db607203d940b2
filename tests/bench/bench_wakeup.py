"""Benchmark: wake-up latency, from "dependency exported" to "dependent's process started".

Run by ``make bench`` (``make bench-wakeup`` alone); not part of the test suite. Everything
is real: the local stack (kubeemu, redis-server, watcher, two worker processes with the
PyTango side, the local kubelet starting PyTango's DataBaseds and real PyTango device
servers), with the operator's default timing settings. For chains of depth 1, 3 and 10
(depth d: d+1 servers, each depending on a device of the one before), all members created
at once, it records when each device is exported in the TANGO DB (polled every 20 ms), when
each StatefulSet is scaled up and each pod is bound to the Node (watches), and when the
local kubelet started each pod's process (its ``started pod=…`` log record, taken by a
logging handler in this process, where the kubelet runs). A link's latency is the provider's
device exported → the dependent's server process started. Each depth is run ``--rounds``
times (3 by default, fresh servers each time) and the samples of all rounds are pooled.

Beside it, ``tests.bench.legacy_model`` replays the same chains in the legacy flow (two
``retry`` configurations: ska-tango-base's ``global.retry`` and ska-tango-util's default
``--max=60``) under two start-time assumptions, both applied to the operator too: the
starts measured here, chain by chain; and cluster-like starts, ``--simulated`` chains per
depth (1,000 by default, seeded) whose servers take a time drawn from ``--start-range``
(uniform 15-25 s by default) from pod asked for to device exported, the operator's links
composed of this run's measured wake-ups plus those drawn starts. Prints a table, writes
``docs/benchmarks.md``'s section and a plot, ``docs/bench-wakeup.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tango
from kubernetes import client, watch

try:  # the plot is optional: matplotlib comes with the dev extra only
    from matplotlib.figure import Figure
except ImportError:  # pragma: no cover
    Figure = None  # type: ignore[assignment,misc]

from devstack.stack import LocalStack, StackOptions, cluster_tango_host
from tango_operator import crd
from tests.bench.legacy_model import (
    GLOBAL_RETRY,
    OPERATOR,
    UTIL_DEFAULT,
    LegacyFlow,
    Samples,
    ServerStart,
    Timeline,
    simulate,
)
from tests.bench.report import DOC, write_section

JsonDict = dict[str, Any]
DATABASEDS = "tango-db"
DEFAULT_SETTINGS = {
    # the operator's own defaults, not the demo's quicker ones
    "TANGO_OPERATOR_WAITING_MIN_SECONDS": "1",
    "TANGO_OPERATOR_WAITING_MAX_SECONDS": "60",
    "TANGO_OPERATOR_PENDING_POLL_SECONDS": "2",
    "TANGO_OPERATOR_RESYNC_SECONDS": "300",
}
SCRIPT = """\
from tango.server import Device, attribute, run


class Link(Device):
    @attribute(dtype=int)
    def hops(self):
        return 0


if __name__ == "__main__":
    run((Link,))
"""


def _server(chain: int, member: int, round_: int) -> JsonDict:
    name = f"r{round_}c{chain}-m{member}"
    device = f"bench/r{round_}c{chain}/m{member}"
    config: JsonDict = {"servers": {"Link": {name: {"Link": {device: {}}}}}}
    spec: JsonDict = {
        "dsname": "Link",
        "args": name,
        "image": "registry.example/link:1",
        "databaseds": DATABASEDS,
        "script": SCRIPT,
        "config": json.dumps(config),
    }
    if member:
        spec["dependsOn"] = [f"bench/r{round_}c{chain}/m{member - 1}"]
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name},
        "spec": spec,
    }


class ProcessStarts(logging.Handler):
    """When the local kubelet started each pod's process (monotonic), by ``namespace/pod``.

    ``devstack.runner.process`` logs ``started pod=NAMESPACE/POD pid=N`` right after it
    started the process, in the kubelet's thread of this process: the handler takes the time
    then. Only a pod's first start counts.
    """

    LOGGER = "devstack.runner.process"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if str(record.msg).startswith("started pod=") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            self.started.setdefault(str(args[0]), now)

    def __enter__(self) -> ProcessStarts:
        logger = logging.getLogger(self.LOGGER)
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


@dataclass
class Recorder:
    """First times (monotonic) of StatefulSet scale-ups, pod bindings and device exports."""

    scaled: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    """By StatefulSet name: its pod bound to the Node (the kubelet may start it)."""
    exported: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch_statefulsets(self, api_client: client.ApiClient, namespace: str) -> None:
        apps = client.AppsV1Api(api_client)
        while not self.stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    apps.list_namespaced_stateful_set, namespace, timeout_seconds=5
                ):
                    statefulset = event["object"]
                    name = statefulset.metadata.name
                    if (statefulset.spec.replicas or 0) >= 1 and name not in self.scaled:
                        self.scaled[name] = time.monotonic()
                    if self.stop.is_set():
                        break
            except Exception:  # a watch that ends is simply started again
                time.sleep(0.05)

    def watch_pods(self, api_client: client.ApiClient, namespace: str) -> None:
        core = client.CoreV1Api(api_client)
        while not self.stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(core.list_namespaced_pod, namespace, timeout_seconds=5):
                    pod = event["object"]
                    owner = pod.metadata.name.rpartition("-")[0]  # StatefulSet pod NAME-0
                    if pod.spec.node_name and owner not in self.bound:
                        self.bound[owner] = time.monotonic()
                    if self.stop.is_set():
                        break
            except Exception:  # a watch that ends is simply started again
                time.sleep(0.05)

    def poll_exports(self, database: tango.Database) -> None:
        while not self.stop.wait(0.02):
            try:
                names = database.get_device_exported("bench/*")
            except tango.DevFailed:
                continue
            now = time.monotonic()
            for device in names:
                self.exported.setdefault(str(device).lower(), now)


FLOWS = (LegacyFlow(retry=GLOBAL_RETRY), LegacyFlow(retry=UTIL_DEFAULT))
COLUMNS = (OPERATOR, GLOBAL_RETRY.label, UTIL_DEFAULT.label)


def _samples() -> dict[str, Samples]:
    return {column: Samples() for column in COLUMNS}


@dataclass
class DepthResult:
    """One depth's samples: measured starts (all rounds pooled) and cluster-like starts."""

    depth: int
    measured: dict[str, Samples] = field(default_factory=_samples)
    starts: list[ServerStart] = field(default_factory=list)
    """Every server's measured start."""
    wakeups: list[float] = field(default_factory=list)
    """Every link's measured wake-up: provider's device exported → dependent scaled up."""
    cluster: dict[str, Samples] = field(default_factory=_samples)

    def merge(self, other: DepthResult) -> DepthResult:
        """This round's measured samples pooled with another round's of the same depth."""
        return DepthResult(
            depth=self.depth,
            measured={k: self.measured[k].merge(other.measured[k]) for k in COLUMNS},
            starts=self.starts + other.starts,
            wakeups=self.wakeups + other.wakeups,
        )

    def simulate(self, chains: int, seed: int, low: float, high: float) -> None:
        """Fill ``cluster``: ``chains`` chains with starts drawn from [low, high] s."""
        rng = random.Random(f"{seed}-{self.depth}")
        self.cluster = simulate(
            rng, self.depth, chains, self.starts, self.wakeups, FLOWS, low=low, high=high
        )

    def rows(self, low: float, high: float) -> list[str]:
        return [
            _row(self.depth, "measured (this run)", self.measured),
            _row(self.depth, f"drawn {low:g}-{high:g} s", self.cluster),
        ]


def _row(depth: int, label: str, samples: dict[str, Samples]) -> str:
    operator = samples[OPERATOR]
    cells = [str(depth), label, str(len(operator.chains)), str(len(operator.links))]
    cells += [summary(samples[k].links, 2) for k in COLUMNS]
    cells += [summary(samples[k].chains, 1) for k in COLUMNS]
    for key in COLUMNS[1:]:
        hit, total = samples[key].backoff_chains, len(samples[key].chains)
        cells.append(f"{100 * hit / total:.0f} % ({hit}/{total})" if total else "-")
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| chain depth | starts | chains | links | link: operator (s) | link: legacy, "
    "global.retry (s) | link: legacy, --max=60 (s) | chain: operator (s) | chain: legacy, "
    "global.retry (s) | chain: legacy, --max=60 (s) | chains with a back-off gap: "
    "global.retry | --max=60 |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)
LEGEND = (
    'Each cell: **p50, p99** when it rests on at least 100 samples (the "links" or '
    '"chains" column), else **median (min-max)**. Link: the provider\'s device exported → '
    "the dependent's server process started. Chain: the first server's StatefulSet scaled up "
    "(legacy: every pod created) → the last server's process started. Back-off gap: a "
    "provider came up while a dependent's init container waited in CrashLoopBackOff."
)
MIN_FOR_P99 = 100


def summary(values: Sequence[float], digits: int) -> str:
    """``p50, p99`` of at least ``MIN_FOR_P99`` values, else ``median (min-max)``."""
    if not values:
        return "-"
    if len(values) >= MIN_FOR_P99:
        return f"p50 {percentile(values, 50):.{digits}f}, p99 {percentile(values, 99):.{digits}f}"
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure_depth(
    stack: LocalStack,
    processes: ProcessStarts,
    depth: int,
    chains: int,
    timeout: float,
    round_: int = 0,
) -> DepthResult:
    assert stack.api_client is not None
    namespace = f"wake-d{depth}"
    custom = client.CustomObjectsApi(stack.api_client)
    if round_ == 0:
        custom.create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            namespace,
            "databaseds",
            {
                "apiVersion": crd.API_VERSION,
                "kind": "DatabaseDS",
                "metadata": {"name": DATABASEDS},
            },
        )
    _wait(lambda: _state(custom, namespace, "databaseds", DATABASEDS) == "Running", timeout)
    host, _, port = stack.host_map[cluster_tango_host(DATABASEDS, namespace)].rpartition(":")
    database = tango.Database(host, int(port))
    recorder = Recorder()
    threads = [
        threading.Thread(
            target=recorder.watch_statefulsets, args=(stack.api_client, namespace), daemon=True
        ),
        threading.Thread(
            target=recorder.watch_pods, args=(stack.api_client, namespace), daemon=True
        ),
        threading.Thread(target=recorder.poll_exports, args=(database,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    for chain in range(chains):
        for member in range(depth + 1):
            custom.create_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, "deviceservers", _server(chain, member, round_)
            )
    prefix = f"r{round_}"
    names = [f"{prefix}c{c}-m{m}" for c in range(chains) for m in range(depth + 1)]
    try:
        _wait(
            lambda: all(_state(custom, namespace, "deviceservers", n) == "Running" for n in names),
            timeout,
        )
    except TimeoutError:
        raise TimeoutError(
            f"depth {depth}, round {round_}: not all Running within {timeout:g} s: "
            + "; ".join(_not_running(custom, namespace, names))
        ) from None
    time.sleep(0.2)
    recorder.stop.set()
    for thread in threads:
        thread.join(timeout=10)

    result = DepthResult(depth=depth)
    for chain in range(chains):
        servers = [f"{prefix}c{chain}-m{m}" for m in range(depth + 1)]
        try:
            process = [processes.started[f"{namespace}/{name}-0"] for name in servers]
        except KeyError as exc:
            raise RuntimeError(
                f"no process start recorded for pod {exc}: does the local kubelet still log "
                f"'started pod=…' on {ProcessStarts.LOGGER}?"
            ) from None
        scaled = [recorder.scaled[name] for name in servers]
        exported = [recorder.exported[f"bench/{prefix}c{chain}/m{m}"] for m in range(depth + 1)]
        starts = [
            ServerStart(
                launch=process[m] - scaled[m],
                # the watch may see the binding a little after the kubelet did
                handoff=max(0.0, process[m] - recorder.bound[name]),
                boot=exported[m] - process[m],
            )
            for m, name in enumerate(servers)
        ]
        result.starts += starts
        result.wakeups += [scaled[m] - exported[m - 1] for m in range(1, depth + 1)]
        # the operator as measured; the legacy flows with the same starts, their pods all
        # created when the operator scaled this chain's first server up
        measured = Timeline(process, exported, [0] * len(servers), [False] * len(servers))
        result.measured[OPERATOR].add(measured, start=scaled[0])
        for flow in FLOWS:
            result.measured[flow.retry.label].add(flow.chain(starts))
    for name in names:
        custom.delete_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, "deviceservers", name
        )
    apps = client.AppsV1Api(stack.api_client)
    servers_selector = "app.kubernetes.io/component=device-server"
    _wait(
        lambda: (
            not apps.list_namespaced_stateful_set(namespace, label_selector=servers_selector).items
        ),
        timeout,
    )
    return result


def _state(custom: client.CustomObjectsApi, namespace: str, plural: str, name: str) -> str | None:
    found = custom.get_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, plural, name)
    state: str | None = (found.get("status") or {}).get("state")
    return state


def _not_running(custom: client.CustomObjectsApi, namespace: str, names: list[str]) -> list[str]:
    """``name: state (message)`` of each of ``names`` that is not Running."""
    found = []
    for name in names:
        status = (
            custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, "deviceservers", name
            ).get("status")
            or {}
        )
        if status.get("state") != "Running":
            ready: JsonDict = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            found.append(f"{name}: {status.get('state')} ({ready.get('message', '')})")
    return found


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout}s")
        time.sleep(0.1)


def plot(results: Sequence[DepthResult], low: float, high: float, path: Path) -> bool:
    """Draw the link latency distributions to ``path``; False without matplotlib."""
    if Figure is None:
        print("matplotlib is not installed: no plot")
        return False
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2, sharey=True)
    names = {
        OPERATOR: "operator",
        GLOBAL_RETRY.label: "legacy, global.retry",
        UTIL_DEFAULT.label: "legacy, --max=60",
    }
    panels: list[tuple[Any, str, list[dict[str, Samples]]]] = [
        (axes[0], "measured starts (this run)", [r.measured for r in results]),
        (axes[1], f"starts drawn from {low:g}-{high:g} s", [r.cluster for r in results]),
    ]
    for axis, title, samples in panels:
        for key in COLUMNS:
            values = [v for depth in samples for v in depth[key].links]
            if not values:
                continue
            ordered = sorted(max(v, 1e-3) for v in values)
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            axis.step(ordered, fractions, where="post", label=f"{names[key]} (n={len(ordered)})")
        axis.set_xscale("log")
        axis.set_xlabel("provider exported → dependent's process started (s)")
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    axes[0].set_ylabel("fraction of links")
    figure.suptitle("Wake-up latency per link, chains of depth 1, 3 and 10 pooled")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def _starts_line(results: Sequence[DepthResult]) -> str:
    starts = [s for r in results for s in r.starts]

    def part(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

    return (
        f"Measured starts ({len(starts)} servers): launch (StatefulSet scaled → process "
        f"started) {part([s.launch for s in starts])}; handoff (pod bound → process started) "
        f"{part([s.handoff for s in starts])}; boot (process started → device exported) "
        f"{part([s.boot for s in starts])}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument(
        "--chains", type=int, nargs="+", default=[10, 4, 2], help="chains per depth"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per depth, pooled")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--simulated",
        type=int,
        default=1000,
        help="chains per depth with drawn (cluster-like) starts, both flows (default 1000)",
    )
    parser.add_argument(
        "--start-range",
        type=float,
        nargs=2,
        default=[15.0, 25.0],
        metavar=("LOW", "HIGH"),
        help="drawn starts, pod asked for → device exported, uniform (default 15 25 s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the drawn starts")
    parser.add_argument(
        "--workdir", type=Path, help="keep the stack's files and logs here (default: a temp dir)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    if len(options.chains) != len(options.depths):
        parser.error("give one --chains value per depth")
    low, high = options.start_range
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.nullcontext(str(options.workdir))
        if options.workdir is not None
        else tempfile.TemporaryDirectory(prefix="bench-wakeup-")
    ) as scratch:
        stack = LocalStack(
            StackOptions(
                workdir=Path(scratch),
                databaseds=tuple((f"wake-d{d}", DATABASEDS) for d in options.depths),
                workers=2,
                flower=False,
                metrics=False,
                environment=DEFAULT_SETTINGS,
            )
        )
        with ProcessStarts() as processes, stack:
            assert stack.api_client is not None
            core = client.CoreV1Api(stack.api_client)
            for depth in options.depths:
                core.create_namespace({"metadata": {"name": f"wake-d{depth}"}})
            print(HEADER, flush=True)
            results = []
            for depth, chains in zip(options.depths, options.chains, strict=True):
                result = measure_depth(stack, processes, depth, chains, options.timeout)
                for round_ in range(1, max(1, options.rounds)):
                    result = result.merge(
                        measure_depth(stack, processes, depth, chains, options.timeout, round_)
                    )
                result.simulate(options.simulated, options.seed, low, high)
                results.append(result)
                print(f"depth {depth}: {max(1, options.rounds)} rounds done", flush=True)
                print("\n".join(result.rows(low, high)), flush=True)
    print(_starts_line(results), flush=True)
    if not options.no_doc:
        table = "\n".join([HEADER, *(row for r in results for row in r.rows(low, high))])
        table += f"\n\n{LEGEND}\n\n{_starts_line(results)}"
        write_section("bench_wakeup", table)
        if plot(results, low, high, DOC.parent / "bench-wakeup.png"):
            print(f"plot: {DOC.parent / 'bench-wakeup.png'}")


if __name__ == "__main__":
    main()
