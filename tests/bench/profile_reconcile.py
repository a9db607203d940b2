"""Where a reconcile's CPU goes: tango-operator and the kopf baseline, sampled by py-spy.

Run by ``make bench-profile`` (``python -m tests.bench.profile_reconcile``); not part of the
test suite. For each of the two operators it starts itself again (``--run kopf|operator``)
under ``py-spy record --gil --subprocesses``: that child builds the world of
``tests.bench.bench_reconcile`` (kubeemu with ``--latency`` ms per request, ``--crs``
DeviceServers in ``--namespaces`` namespaces, created before the operator starts) and runs
the operator until every CR is Running, without the failover phase. kopf runs with
``--kopf-workers`` handler threads; tango-operator as the watcher and one worker process of
``--concurrency`` threads.

In: py-spy's raw samples (one line per distinct stack: the process, the frames root first,
the count), and the CPU time (user + system) of every process the run starts, read from /proc
while it runs (``CpuMeter``). ``--gil`` keeps only samples of the thread holding the GIL, so
a sample is Python running, not waiting. Each sample is put in the first component of
``COMPONENTS`` that one of its frames matches, and its process in the kind named by
``PROCESS_KINDS``; a kind's CPU time is divided among its components in proportion to their
samples (a loaded profiler misses samples, so their count alone is not a time).
Out: a table of CPU ms per CR by component and process kind (start-up imports apart),
printed and written to ``docs/benchmarks.md`` (section ``bench_profile``). redis-server is
not Python: its CPU time is a total without components. kubeemu is left out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.bench_reconcile import cluster, run_kopf, run_operator
from tests.bench.procfs import cpu_seconds, process_tree
from tests.bench.report import write_section

COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up: imports", ("_find_and_load",)),
    ("Celery: receive a message", ("MultiChannelPoller.on_readable",)),
    ("Celery: acknowledge it", ("Message.ack_log_error",)),
    ("Celery: poll set-up per message", ("on_poll_start",)),
    ("Celery: publish", ("Publisher.send",)),
    (
        "Kubernetes API client (HTTP, JSON)",
        ("Kube._call_once", "Kube._request", "Kube._json", "WatchStream.events", "/_cogs/clients/"),
    ),
    ("rendering the children (Jinja2)", ("render_device_server",)),
    ("work queue, child ledger (Redis)", ("tango_operator/workqueue/",)),
    ("Events (worker thread)", ("EventRecorder._run",)),
    ("reconcile logic, Celery's tracer", ("trace_task",)),
    ("watch event handling", ("Watcher.on_event", "Source._on_event")),
    ("kopf's handler machinery", ("kopf/",)),
    ("other", ()),
)
"""Components in order of precedence: a sample goes to the first whose pattern a frame has."""

PROCESS_KINDS: tuple[tuple[str, str], ...] = (
    ("kopf_baseline", "kopf"),
    ("-m watcher", "watcher"),
    ("workers.run", "worker"),
    ("tango_operator.cli worker", "worker"),
    ("redis-server", "redis-server"),
)
"""(command-line fragment, kind); a process matching none is left out: the bench itself and
kubeemu, whose samples include building the world (its CPU per CR is measured by
``bench_reconcile``). redis-server is not Python: it has CPU time but no samples."""
STARTUP = COMPONENTS[0][0]
OWN_KINDS = {"kopf": ("kopf",), "operator": ("watcher", "worker", "redis-server")}
"""The process kinds of each operator, in the order of the table's columns."""


@dataclass
class Profile:
    """The samples of one run, by (process kind, component)."""

    label: str
    crs: int
    seconds: float
    samples: Counter[tuple[str, str]]
    cpu: dict[str, float]
    """CPU seconds (user + system, from /proc) of the processes of each kind."""
    own: tuple[str, ...]
    """The process kinds that are this operator (kopf does not use the world's redis-server)."""

    def _share(self, kind: str, wanted: Callable[[str], bool]) -> float:
        """The CPU seconds of ``kind`` spread over its samples: the part of the ``wanted``."""
        counts = {c: n for (k, c), n in self.samples.items() if k == kind}
        total = sum(counts.values())
        if not total:
            return 0.0
        return self.cpu.get(kind, 0.0) * sum(n for c, n in counts.items() if wanted(c)) / total

    def ms_per_cr(self, kind: str, component: str | None = None) -> float:
        """CPU ms per CR of ``component`` (None: all but the start-up; unsampled: all)."""
        if not self.sampled(kind):
            return self.cpu.get(kind, 0.0) * 1000 / self.crs if component is None else 0.0
        seconds = self._share(kind, lambda c: c == component if component else c != STARTUP)
        return seconds * 1000 / self.crs

    def startup_seconds(self, kind: str) -> float:
        """CPU seconds the processes of ``kind`` spent importing, once."""
        return self._share(kind, lambda c: c == STARTUP)

    def sampled(self, kind: str) -> bool:
        """Whether py-spy sampled the processes of ``kind`` (not so redis-server)."""
        return any(k == kind for k, _ in self.samples)

    def kinds(self) -> list[str]:
        return [kind for kind in self.own if kind in self.cpu]


def component_of(frames: Iterable[str]) -> str:
    listed = list(frames)
    for name, patterns in COMPONENTS:
        if not patterns or any(p in frame for frame in listed for p in patterns):
            return name
    return "other"


def kind_of(frames: list[str]) -> str | None:
    processes = [frame for frame in frames if frame.startswith("process ")]
    if not processes:
        return None
    return kind_of_command(processes[-1])  # the innermost: py-spy nests a child in its parent


def kind_of_command(command: str) -> str | None:
    for fragment, kind in PROCESS_KINDS:
        if fragment in command:
            return kind
    return None


def parse(raw: Path) -> Counter[tuple[str, str]]:
    """py-spy's raw output → samples by (process kind, component)."""
    samples: Counter[tuple[str, str]] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        kind = kind_of(frames)
        if kind is not None:
            samples[(kind, component_of(f for f in frames if not f.startswith("process ")))] += int(
                count
            )
    return samples


def run_child(options: argparse.Namespace) -> None:
    """The profiled run: one operator on a fresh world, until every CR is Running."""
    with cluster(options.crs, options.namespaces, options.latency) as world:
        if options.run == "kopf":
            result = run_kopf(world, "kopf", options.kopf_workers, options.deadline, failover=False)
        else:
            result = run_operator(
                world, 1, options.concurrency, options.deadline, "fair", failover=False
            )
    print(f"seconds {result.seconds:.3f}", flush=True)


class CpuMeter:
    """The CPU time of every process a command starts, by kind, read from /proc as they run.

    A process's last reading before it exits is its figure (read every ``interval`` s).
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._root = 0

    def run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            self._root = process.pid
            reader = threading.Thread(target=self._read_until_stopped, daemon=True)
            reader.start()
            stdout, stderr = process.communicate()
            self._stop.set()
            reader.join()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def _read_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in process_tree(self._root):
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    kind = kind_of_command(command.decode(errors="replace"))
                    if kind is not None:
                        self.last[pid] = (kind, cpu_seconds(pid))
                except (OSError, IndexError, ValueError):
                    continue  # gone between the listing and the reading

    def by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for kind, seconds in self.last.values():
            totals[kind] = totals.get(kind, 0.0) + seconds
        return totals


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: `make venv` installs it (a dev dependency)")
    return found


def profile(label: str, options: argparse.Namespace, scratch: Path) -> Profile:
    raw = scratch / f"{label}.txt"
    child = [
        sys.executable,
        "-m",
        "tests.bench.profile_reconcile",
        "--run",
        label,
        *("--crs", str(options.crs), "--namespaces", str(options.namespaces)),
        *("--latency", str(options.latency), "--concurrency", str(options.concurrency)),
        *("--kopf-workers", str(options.kopf_workers), "--deadline", str(options.deadline)),
    ]
    command = [
        py_spy(),
        "record",
        "--gil",
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(options.rate),
        "--output",
        str(raw),
        "--",
        *child,
    ]
    meter = CpuMeter()
    done = meter.run(command)
    seconds = [line for line in done.stdout.splitlines() if line.startswith("seconds ")]
    if done.returncode != 0 or not seconds or not raw.exists():
        raise SystemExit(f"the profiled {label} run failed:\n{done.stdout}\n{done.stderr}")
    return Profile(
        label,
        options.crs,
        float(seconds[0].split()[1]),
        parse(raw),
        meter.by_kind(),
        OWN_KINDS[label],
    )


def table(profiles: list[Profile]) -> str:
    """CPU ms per CR: a row per component, a column per (operator, process kind)."""
    columns = [(p, kind) for p in profiles for kind in p.kinds()]
    header = "| component | " + " | ".join(f"{p.label}: {kind}" for p, kind in columns) + " |"
    rows = [header, "|---|" + "---|" * len(columns)]
    for name, _ in COMPONENTS[1:]:
        cells = [p.ms_per_cr(kind, name) if p.sampled(kind) else None for p, kind in columns]
        if any(cell is not None and cell >= 0.05 for cell in cells):
            shown = ["" if cell is None else f"{cell:.2f}" for cell in cells]
            rows.append(f"| {name} | " + " | ".join(shown) + " |")
    totals = " | ".join(f"**{p.ms_per_cr(kind):.2f}**" for p, kind in columns)
    rows.append(f"| **total** | {totals} |")
    sums = ", ".join(
        f"{p.label} {sum(p.ms_per_cr(kind) for kind in p.kinds()):.1f}" for p in profiles
    )
    startup = ", ".join(
        f"{p.label}: {kind} {p.startup_seconds(kind):.2f} s"
        for p, kind in columns
        if p.sampled(kind)
    )
    return (
        "\n".join(rows)
        + f"\n\nAll processes of each operator, per CR: {sums} ms. Start-up imports, once per"
        + f" process, are not in the table: {startup}."
    )


def main() -> None:
    """Profile kopf, then tango-operator; print the table, update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--latency", type=int, default=20, help="ms added to every request")
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's threads")
    parser.add_argument("--kopf-workers", type=int, default=32, help="kopf's handler threads")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--run", choices=["kopf", "operator"], help=argparse.SUPPRESS)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/")
    options = parser.parse_args()
    if options.run:
        run_child(options)
        return
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        profiles = [profile(label, options, Path(scratch)) for label in ("kopf", "operator")]
    body = table(profiles)
    command = (
        f"python -m tests.bench.profile_reconcile --crs {options.crs} --namespaces "
        f"{options.namespaces} --latency {options.latency} --concurrency "
        f"{options.concurrency} --kopf-workers {options.kopf_workers} --rate {options.rate}"
    )
    times = ", ".join(f"{p.label} {p.seconds:.1f} s to all Running" for p in profiles)
    text = (
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {times}, "
        "under the profiler; CPU ms per DeviceServer):\n\n" + body
    )
    print(text)
    if not options.no_doc:
        write_section("bench_profile", text)


if __name__ == "__main__":
    main()
