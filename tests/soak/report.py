"""The soak's figures, as the Markdown that goes into ``docs/benchmarks.md``.

``Figures`` is filled by ``tests.soak.soak.run`` from the audit log (``tests.soak.traffic``),
the reconcile trace (``tests.soak.checks.reconciles``), the chaos helpers' counters and the
convergence poller's samples; ``markdown`` renders a table of figures and a timeline, and
``write_doc`` puts them between the ``soak`` markers (``tests.bench.report.write_section``;
``soak-real`` for a run on the real server).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tests.bench.report import write_section
from tests.soak.checks import Window
from tests.soak.plan import Plan
from tests.soak.traffic import Traffic

if TYPE_CHECKING:
    from tests.soak.chaos import WatcherPair, WorkerFleet
    from tests.soak.soak import Config


@dataclass
class Timeline:
    began: float
    events: list[tuple[float, str]]
    samples: list[tuple[float, int]]
    bucket: float

    def what_happened(self, start: float, end: float) -> str:
        notes = [what for when, what in self.events if start <= when < end]
        kills = [n for n in notes if n.startswith("kill ")]
        pods = sum("worker pod" in n for n in kills)
        drops = [n for n in notes if n.startswith("dropped ")]
        parts = []
        if kills:
            parts.append(f"{len(kills)} kills" + (f" ({pods} of a pod)" if pods else ""))
        if drops:
            compacted = sum("compacting" in n for n in drops)
            parts.append(
                f"{len(drops)} watch drops" + (f", {compacted} compactions" * bool(compacted))
            )
        parts.extend(n.split(";")[0] for n in notes if n not in kills and n not in drops)
        return "; ".join(parts)

    def final_at(self, moment: float) -> int | None:
        seen = [count for when, count in self.samples if when < moment]
        return seen[-1] if seen else None


@dataclass
class Figures:
    config: Config
    server: Literal["kubeemu", "real"]
    injector: str
    """What injected the API faults."""
    notes: tuple[str, ...]
    """What the figures and checks do differently on this server, and why."""
    plan: Plan
    seconds: float
    chaos_began: float
    faults_off: float
    converged_after: float | None
    quiet: tuple[float, float]
    """The quiet window (time.time()); ``quiet_mono`` the same in time.monotonic()."""
    quiet_mono: tuple[float, float]
    traffic: Traffic
    windows: list[Window]
    fleet: WorkerFleet
    watchers: WatcherPair
    drops: int
    compactions: int
    faults_injected: int
    lost_resent: int
    """Reconcile messages the watchers' pumps found lost on the way to a worker and sent again."""
    timeline: Timeline
    problems: list[str]

    def rows(self) -> list[tuple[str, str]]:
        config, crs, plan = self.config, len(self.plan.resources), self.plan
        servers = len(plan.of_kind("DeviceServer"))
        run = self.traffic.between(self.chaos_began, self.quiet[1])
        chaos = self.traffic.between(self.chaos_began, self.faults_off)
        quiet = self.traffic.between(*self.quiet)
        seconds = self.quiet[1] - self.quiet[0]
        senders = quiet.by_sender()
        injected = chaos.injected()
        share = 100 * sum(injected.values()) / max(1, len(chaos.records))
        per_key = Counter(w.key for w in self.windows)
        kinds = Counter(json.loads(w.key)[0] for w in self.windows)
        cut = sum(w.exit is None for w in self.windows)
        median = statistics.median(per_key.values()) if per_key else 0
        peak = self.traffic.peak_rate(self.chaos_began, self.quiet[1])
        writes = quiet.writes()
        calm = Counter(
            w.key for w in self.windows if self.quiet_mono[0] <= w.enter < self.quiet_mono[1]
        )
        converged = (
            "not converged" if self.converged_after is None else f"{self.converged_after:.1f} s"
        )
        lease = config.watcher_lease
        if self.server == "real":
            api = (
                "kube-apiserver 1.32 (etcd, its StatefulSet controller and garbage collector, a "
                "simulated node: pods Running and Ready at once, no process), faults from "
                "`devstack.faultproxy` in front; " + "; ".join(self.notes)
            )
            writes_are = "write requests that succeeded, no-ops included"
        else:
            api = "kubeemu (StatefulSets instant), its own faults and audit log"
            writes_are = "writes"
        return [
            ("API server", api),
            (
                "CRs",
                f"{servers} DeviceServers ({len(plan.bad)} in Error by design: 4 invalid specs "
                f"and a 3-server cycle), {crs - servers} DatabaseDS, {len(plan.namespaces)} "
                f"namespaces; longest dependency chain {plan.chain_depth} servers",
            ),
            (
                "operator",
                f"2 watchers; {config.worker_pods} worker pods of {config.concurrency} pool "
                "processes; TANGO: the stand-in `SoakStandIn`",
            ),
            (
                "duration",
                f"{self.seconds:.0f} s in all; faults for {config.chaos_seconds:.0f} s, the CRs "
                f"created during the first {config.chaos_seconds * config.create_fraction:.0f} s",
            ),
            (
                "kills (SIGKILL)",
                f"{self.fleet.child_kills} pool children, {self.fleet.main_kills} Celery main "
                f"processes, {self.fleet.delivery_kills} inside kombu's delivery "
                f"({self.fleet.delivery_kills_fired} fired), {self.fleet.pod_kills} whole worker "
                f"pods (restarted {self.fleet.restarts} times), 1 leading watcher",
            ),
            (
                "messages lost between Redis and a worker",
                f"{self.lost_resent} found by the watcher's pump and sent again "
                "(tango_operator/workqueue/lost.py)",
            ),
            (
                "leader takeover",
                f"{self.watchers.takeover_seconds or 0:.1f} s after the kill "
                f"(Lease {lease[0]:.0f} s)",
            ),
            (
                "other faults",
                f"Redis restarted empty once; TANGO DB down {config.outage_seconds:.0f} s; "
                f"{self.drops} watch drops, {config.drop_every:.0f} s apart, "
                f"{self.compactions} of them after compacting the history",
            ),
            (
                f"API faults injected ({self.injector})",
                f"{self.faults_injected} in all; in the operator's {len(chaos.records)} requests "
                f"{injected.get('500', 0)} x 500, {injected.get('503', 0)} x 503, "
                f"{injected.get('429', 0)} x 429 ({share:.1f} %), and 0-200 ms on each",
            ),
            (
                "reconciles",
                f"{len(self.windows)} ({kinds.get('DeviceServer', 0)} DeviceServer, "
                f"{kinds.get('DatabaseDS', 0)} DatabaseDS), {cut} cut short by a kill; "
                f"per CR median {median:.0f}, max {max(per_key.values(), default=0)}",
            ),
            (
                "API requests per CR",
                f"{len(run.records) / crs:.1f}, of them {len(run.mutations()) / crs:.1f} "
                f"{writes_are} (faults on to the end of the quiet window)",
            ),
            (
                "request rate",
                f"peak {peak:.0f}/s (5 s windows); "
                f"mean {len(chaos.records) / config.chaos_seconds:.0f}/s under faults",
            ),
            ("converged after the last fault", converged),
            (
                "steady (converged, no faults)",
                f"{len(quiet.records) / seconds:.1f} requests/s over {seconds:.0f} s (one resync "
                f"period): watchers {senders.get('watcher', 0) / seconds:.1f}/s (Lease every "
                f"{lease[2]:.0f} s, watches, the resync's lists), workers "
                f"{senders.get('worker', 0) / seconds:.1f}/s for {sum(calm.values())} reconciles "
                f"(the resync's one per CR, the cycle's re-checks every "
                f"{config.waiting_max_seconds:.0f} s; at most {max(calm.values(), default=0)} of "
                f"one CR); {60 * len(quiet.records) / seconds / crs:.2f} requests per CR per "
                f"minute; {len(writes)} writes but the Lease's",
            ),
            ("checks", "passed" if not self.problems else f"{len(self.problems)} problems"),
        ]

    def timeline_rows(self) -> list[str]:
        rows = []
        start, bucket = self.chaos_began, self.timeline.bucket
        while start < self.quiet[1]:
            end = min(start + bucket, self.quiet[1])
            window = self.traffic.between(start, end)
            seconds = end - start
            final = self.timeline.final_at(end)
            rows.append(
                f"| {start - self.chaos_began:.0f}-{end - self.chaos_began:.0f} | "
                f"{len(window.records) / seconds:.0f} | {len(window.writes()) / seconds:.1f} | "
                f"{sum(window.injected().values())} | {'' if final is None else final} | "
                f"{self.timeline.what_happened(start, end)} |"
            )
            start = end
        return rows

    def markdown(self) -> str:
        day = time.strftime("%Y-%m-%d", time.localtime(self.chaos_began))
        lines = [f"Run on {day}.", "", "| | |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        lines += [
            "",
            "| t (s) | operator requests/s | writes/s (Leases aside) | faults injected | CRs final "
            "| what happened |",
            "|---|---|---|---|---|---|",
            *self.timeline_rows(),
        ]
        return "\n".join(lines)


def write_doc(figures: Figures) -> None:
    write_section("soak" if figures.server == "kubeemu" else "soak-real", figures.markdown())
