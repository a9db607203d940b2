"""Benchmark: wake-up latency, from "dependency exported" to "dependent scaled up".

Run by ``make bench`` (``make bench-wakeup`` alone); not part of the test suite. Everything
is real: the local stack (kubeemu, redis-server, watcher, two worker processes with the
PyTango side, the local kubelet starting PyTango's DataBaseds and real PyTango device
servers), with the operator's default timing settings. For chains of depth 1, 3 and 10
(depth d: d+1 servers, each depending on a device of the one before), all members created
at once, it records when each device is exported in the TANGO DB (polled every 20 ms) and
when each StatefulSet is scaled up (a watch), and reports the latency of every link. Each
depth is run ``--rounds`` times (3 by default, fresh servers each time) and the links of
all rounds are pooled, so that the percentiles rest on more than a handful of samples.

Beside it, in the same run, the legacy flow's model (``tests.bench.legacy_model``) replays
the same chains: with the start-up durations measured here, and with 20 s per start (what
a pod start takes in a cluster: scheduling, container start, server start). Prints a table,
writes ``docs/benchmarks.md``'s section and a plot, ``docs/bench-wakeup.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from tests.bench.legacy_model import LegacyFlow
from tests.bench.report import DOC, write_section

JsonDict = dict[str, Any]
DATABASEDS = "tango-db"
CLUSTER_START = 20.0
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


@dataclass
class Recorder:
    """First times (monotonic) of StatefulSet scale-ups and device exports."""

    scaled: dict[str, float] = field(default_factory=dict)
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

    def poll_exports(self, database: tango.Database) -> None:
        while not self.stop.wait(0.02):
            try:
                names = database.get_device_exported("bench/*")
            except tango.DevFailed:
                continue
            now = time.monotonic()
            for device in names:
                self.exported.setdefault(str(device).lower(), now)


@dataclass
class DepthResult:
    depth: int
    chains: int
    operator: list[float]
    legacy: list[float]
    legacy_cluster: list[float]
    chain_up: list[float]
    legacy_chain_up: list[float]
    legacy_cluster_chain_up: list[float]
    startups: list[float]

    def merge(self, other: DepthResult) -> DepthResult:
        """This round's samples pooled with another round's of the same depth."""
        return DepthResult(
            depth=self.depth,
            chains=self.chains + other.chains,
            operator=self.operator + other.operator,
            legacy=self.legacy + other.legacy,
            legacy_cluster=self.legacy_cluster + other.legacy_cluster,
            chain_up=self.chain_up + other.chain_up,
            legacy_chain_up=self.legacy_chain_up + other.legacy_chain_up,
            legacy_cluster_chain_up=self.legacy_cluster_chain_up + other.legacy_cluster_chain_up,
            startups=self.startups + other.startups,
        )

    def row(self) -> str:
        def pair(values: Sequence[float]) -> str:
            return f"{percentile(values, 50):.2f} | {percentile(values, 99):.2f}"

        return (
            f"| {self.depth} | {self.chains} | {len(self.operator)} | {pair(self.operator)} | "
            f"{pair(self.legacy)} | {pair(self.legacy_cluster)} | "
            f"{statistics.median(self.chain_up):.1f} | "
            f"{statistics.median(self.legacy_chain_up):.1f} | "
            f"{statistics.median(self.legacy_cluster_chain_up):.1f} |"
        )


HEADER = (
    "| chain depth | chains | links | operator p50 (s) | operator p99 (s) | "
    "legacy model p50 (s) | legacy model p99 (s) | legacy, 20 s starts, p50 (s) | "
    "legacy, 20 s starts, p99 (s) | chain Running: operator (s) | legacy model (s) | "
    "legacy, 20 s starts (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
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
    stack: LocalStack, depth: int, chains: int, timeout: float, round_: int = 0
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
        threading.Thread(target=recorder.poll_exports, args=(database,), daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    created = time.monotonic()
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

    operator: list[float] = []
    legacy: list[float] = []
    cluster: list[float] = []
    startups: list[float] = []
    chain_up: list[float] = []
    legacy_up: list[float] = []
    cluster_up: list[float] = []
    flow = LegacyFlow()
    for chain in range(chains):
        durations = []
        for member in range(depth + 1):
            up = recorder.exported[f"bench/{prefix}c{chain}/m{member}"]
            durations.append(up - recorder.scaled[f"{prefix}c{chain}-m{member}"])
            if member:
                provider_up = recorder.exported[f"bench/{prefix}c{chain}/m{member - 1}"]
                operator.append(recorder.scaled[f"{prefix}c{chain}-m{member}"] - provider_up)
        chain_up.append(recorder.exported[f"bench/{prefix}c{chain}/m{depth}"] - created)
        startups += durations
        # the legacy pods start when the operator scaled up this chain's first server
        # (creating pods takes the same steps either way)
        first_start = recorder.scaled[f"{prefix}c{chain}-m0"] - created
        for starts, latencies, ups in (
            (durations, legacy, legacy_up),
            ([CLUSTER_START] * (depth + 1), cluster, cluster_up),
        ):
            timeline = flow.chain(starts, start=first_start)
            latencies += [timeline[i][0] - timeline[i - 1][1] for i in range(1, len(timeline))]
            ups.append(timeline[-1][1])
    for name in names:
        custom.delete_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, "deviceservers", name
        )
    apps = client.AppsV1Api(stack.api_client)
    servers = "app.kubernetes.io/component=device-server"
    _wait(
        lambda: not apps.list_namespaced_stateful_set(namespace, label_selector=servers).items,
        timeout,
    )
    return DepthResult(
        depth=depth,
        chains=chains,
        operator=operator,
        legacy=legacy,
        legacy_cluster=cluster,
        chain_up=chain_up,
        legacy_chain_up=legacy_up,
        legacy_cluster_chain_up=cluster_up,
        startups=startups,
    )


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


def plot(results: Sequence[DepthResult], path: Path) -> bool:
    """Draw the latency distributions of every link to ``path``; False without matplotlib."""
    if Figure is None:
        print("matplotlib is not installed: no plot")
        return False
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    series = (
        ("operator (measured)", [v for r in results for v in r.operator]),
        ("legacy model, measured starts", [v for r in results for v in r.legacy]),
        ("legacy model, 20 s starts", [v for r in results for v in r.legacy_cluster]),
    )
    for label, values in series:
        ordered = sorted(max(v, 1e-3) for v in values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axis.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})")
    axis.set_xscale("log")
    axis.set_xlabel("dependency exported → dependent scaled up (s)")
    axis.set_ylabel("fraction of links")
    axis.set_title("Wake-up latency, chains of depth 1, 3 and 10")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument(
        "--chains", type=int, nargs="+", default=[10, 4, 2], help="chains per depth"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per depth, pooled")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--workdir", type=Path, help="keep the stack's files and logs here (default: a temp dir)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args()
    if len(options.chains) != len(options.depths):
        parser.error("give one --chains value per depth")
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
        with stack:
            assert stack.api_client is not None
            core = client.CoreV1Api(stack.api_client)
            for depth in options.depths:
                core.create_namespace({"metadata": {"name": f"wake-d{depth}"}})
            print(HEADER, flush=True)
            results = []
            for depth, chains in zip(options.depths, options.chains, strict=True):
                result = measure_depth(stack, depth, chains, options.timeout)
                for round_ in range(1, max(1, options.rounds)):
                    result = result.merge(
                        measure_depth(stack, depth, chains, options.timeout, round_)
                    )
                results.append(result)
                print(f"depth {depth}: {max(1, options.rounds)} rounds done", flush=True)
                print(result.row(), flush=True)
    startups = [s for r in results for s in r.startups]
    print(
        f"measured server start (scaled up → exported): median {statistics.median(startups):.2f}s, "
        f"max {max(startups):.2f}s",
        flush=True,
    )
    if not options.no_doc:
        table = "\n".join([HEADER, *(r.row() for r in results)])
        table += (
            f"\n\nMeasured server start (scaled up → device exported): median "
            f"{statistics.median(startups):.2f} s, max {max(startups):.2f} s."
        )
        write_section("bench_wakeup", table)
        if plot(results, DOC.parent / "bench-wakeup.png"):
            print(f"plot: {DOC.parent / 'bench-wakeup.png'}")


if __name__ == "__main__":
    main()
