"""The fault soak.

The whole operator under API faults, kills, a Redis flush, a leader kill and a TANGO DB outage —
then every CR must be in its right state, and the operator quiet.

``python -m tests.soak.soak`` (``make soak``) runs ``FULL`` — 500 DeviceServers and 20
DatabaseDS in 20 namespaces, minutes — and writes its figures into ``docs/benchmarks.md``
(section ``soak``); ``tests/soak/test_soak_short.py`` runs ``SHORT`` inside ``make test``.
Both run the same scenario with real parts: an API server (``tests.soak.servers``: kubeemu
over HTTP with its StatefulSets instant, or with ``--api real`` a real kube-apiserver with
its controllers, a simulated node and the fault proxy in front), redis-server, two
``python -m watcher`` replicas and ``tango-operator worker`` processes with the TANGO
stand-in (``SoakStandIn``, fed by ``tests.soak.tango_side``).

The timeline (``Config``): the faults of ``tests.soak.chaos.api_faults`` are on for
``chaos_seconds``; the CRs (``tests.soak.plan``) are created during its first part; the
watches are dropped every ``drop_every`` seconds and the history compacted at every
``compact_every``-th drop; ``kills`` SIGKILLs of worker pool children and, every
``pod_kill_every``-th, of a whole worker process group (restarted as a kubelet would);
Redis restarts empty once, the leading watcher is killed once, and the TANGO DBs are down
for ``outage_seconds``. Then the faults stop; once every CR is in its final state, a quiet
window follows. The verdicts are ``tests.soak.checks``'; the figures ``tests.soak.report``'s.

On the real server every check runs; one is adapted (``REAL_SERVER_NOTES``): kube-apiserver's
audit log does not say whether a write changed anything, so the quiet window's "no write but
the Lease's" is decided from the resourceVersions of the soak's objects listed at the window's
start and end (``tests.soak.traffic.settle_changes``), and the run's write figures count the
write requests that succeeded, no-op ones included.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client

from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from tango_operator import crd
from tests.soak import checks, plan, servers
from tests.soak.chaos import WatcherPair, WorkerFleet, api_faults
from tests.soak.report import Figures, Timeline, write_doc
from tests.soak.servers import ApiChoice, Server
from tests.soak.tango_side import TangoSide, driver_client
from tests.soak.traffic import ObjectRef, Traffic, settle_changes
from tests.support.kube_api import KEPT
from tests.support.workers import WorkerPool

log = logging.getLogger("soak")
JsonDict = dict[str, Any]
T = TypeVar("T")
SOURCES = 6
"""The leading watcher's list + watch sources (two CR kinds, four child kinds)."""
CHILD_LISTS = {
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Service": ("", "v1", "services"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Secret": ("", "v1", "secrets"),
    "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims"),
}
"""The children's kinds as (API group, version, resource)."""
REAL_SERVER_NOTES = (
    "kube-apiserver's audit log (level Metadata) does not say whether a write changed "
    "anything: the quiet window's writes are judged by the resourceVersions of the soak's "
    "CRs and children listed at its start and end, and the write counts outside it are "
    "write requests that succeeded, no-op ones included (an upper bound)",
    "the injected faults are the fault proxy's record (they never reach kube-apiserver)",
    "a compaction does not make a recent watch 410 (the watch cache keeps ~75 s of history): "
    "after a drop the watchers mostly resume their watches rather than relist",
)
"""What differs on the real server, for the figures."""


@dataclass(frozen=True)
class Config:
    size: plan.Size
    worker_pods: int
    concurrency: int
    chaos_seconds: float
    kills: int
    pod_kill_every: int
    drop_every: float
    compact_every: int
    outage_seconds: float
    quiet_seconds: float
    """The quiet window after convergence: one resync period, so that it holds one resync."""
    converge_timeout: float
    resync_seconds: float
    waiting_max_seconds: float
    timeline_bucket: float
    create_fraction: float = 0.4
    """The CRs are created during this first part of the chaos."""
    queue_lease_seconds: float = 10.0
    device_health_seconds: float = 60.0
    """How often the workers read a Running server's devices (the chart's default)."""
    watcher_lease: tuple[float, float, float] = (6.0, 4.0, 1.0)
    """Lease duration, renew deadline, retry period of the watchers' election."""
    seed: int = 7


FULL = Config(
    size=plan.Size(namespaces=20, device_servers=500),
    worker_pods=4,
    concurrency=4,
    chaos_seconds=420,
    kills=50,
    pod_kill_every=5,
    drop_every=30,
    compact_every=1,
    outage_seconds=20,
    quiet_seconds=120,
    converge_timeout=1200,
    resync_seconds=120,
    waiting_max_seconds=10,
    timeline_bucket=60,
)
SHORT = Config(
    size=plan.Size(namespaces=4, device_servers=40),
    worker_pods=2,
    concurrency=2,
    chaos_seconds=60,
    kills=8,
    pod_kill_every=4,
    drop_every=15,
    compact_every=1,
    outage_seconds=8,
    quiet_seconds=30,
    converge_timeout=300,
    resync_seconds=30,
    waiting_max_seconds=10,
    timeline_bucket=15,
)


def retried(call: Callable[[], T], what: str, *, attempts: int = 100) -> T:
    """The soak's own API calls go through the same faults.

    Retry 429/5xx and dropped connections (a 409 is the caller's business).
    """
    for _ in range(attempts - 1):
        try:
            return call()
        except client.ApiException as exc:
            if exc.status not in (429, 500, 502, 503, 504):
                raise
        except (urllib3.exceptions.HTTPError, OSError):
            pass
        time.sleep(0.1)
    log.warning("last attempt at %s", what)
    return call()


@dataclass
class Run:
    """The processes and the record of one soak."""

    config: Config
    workdir: Path
    plan: plan.Plan
    server: Server
    redis: RedisServer
    api_client: client.ApiClient
    tango: TangoSide
    fleet: WorkerFleet
    watchers: WatcherPair
    events: list[tuple[float, str]] = field(default_factory=list)
    """(time.time(), what happened)."""
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(time.time(), CRs in their final state) from the convergence poller."""
    drops: int = 0
    compactions: int = 0
    created: int = 0

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))
        log.info("%s", what)

    # --- reading the cluster ---------------------------------------------------------------
    def observe(self) -> dict[checks.ObjectId, JsonDict]:
        custom = client.CustomObjectsApi(self.api_client)
        found: dict[checks.ObjectId, JsonDict] = {}
        for kind in crd.Kind:
            listed = retried(
                lambda kind=kind: custom.list_cluster_custom_object(  # type: ignore[misc]
                    crd.GROUP, crd.VERSION, kind.plural
                ),
                f"listing {kind.plural}",
            )
            for item in listed["items"]:
                meta = item["metadata"]
                found[(kind.value, meta["namespace"], meta["name"])] = item
        return found

    def _list(self, group: str, version: str, resource: str) -> list[JsonDict]:
        """Every object of a resource in the soak's namespaces (one cluster-wide list)."""
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"

        def call() -> Any:
            return self.api_client.call_api(
                f"{prefix}/{resource}",
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=(5.0, 60.0),
            )

        listed = json.loads(retried(call, f"listing {resource}").data)
        namespaces = set(self.plan.namespaces)
        return [
            item
            for item in listed.get("items") or []
            if item["metadata"].get("namespace") in namespaces
        ]

    def children(self) -> list[JsonDict]:
        """The children's kinds in the soak's namespaces.

        Without what the server itself puts into every namespace (a real one's root CA
        ConfigMap).
        """
        found = []
        for kind, (group, version, resource) in CHILD_LISTS.items():
            for item in self._list(group, version, resource):
                if item["metadata"]["name"] not in KEPT.get(resource, set()):
                    found.append({**item, "kind": kind})
        return found

    def versions(self) -> dict[ObjectRef, str]:
        """The resourceVersion of every CR and child-kind object in the soak's namespaces."""
        found: dict[ObjectRef, str] = {}
        kinds = [(crd.GROUP, crd.VERSION, kind.plural) for kind in crd.Kind]
        for group, version, resource in [*kinds, *CHILD_LISTS.values()]:
            for item in self._list(group, version, resource):
                meta = item["metadata"]
                found[(group, resource, meta["namespace"], meta["name"])] = meta["resourceVersion"]
        return found

    # --- the scenario ----------------------------------------------------------------------
    def create_all(self, seconds: float, stop: threading.Event) -> None:
        """Create every CR, DatabaseDSs first, spread over ``seconds``.

        The DeviceServers come in a random order (a dependent often exists before its provider).
        """
        custom = client.CustomObjectsApi(self.api_client)
        rng = random.Random(self.config.seed)
        databases = self.plan.of_kind("DatabaseDS")
        servers = self.plan.of_kind("DeviceServer")
        rng.shuffle(servers)
        order = [*databases, *servers]
        started = time.monotonic()
        for index, expected in enumerate(order):
            due = started + seconds * index / len(order)
            if stop.wait(max(0.0, due - time.monotonic())):
                return

            def create(expected: plan.Expected = expected) -> None:
                try:
                    custom.create_namespaced_custom_object(
                        crd.GROUP,
                        crd.VERSION,
                        expected.namespace,
                        crd.Kind(expected.kind).plural,
                        expected.manifest,
                    )
                except client.ApiException as exc:
                    if exc.status != 409:  # created by an attempt whose answer was lost
                        raise

            retried(create, f"creating {expected.label}")
            self.created += 1

    def poll(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                count = checks.converged(self.plan, self.observe())
            except Exception as exc:
                log.warning("convergence poll failed: %r", exc)
                continue
            self.samples.append((time.time(), count))

    def tend(self, stop: threading.Event) -> None:
        """The kubelet, and the watch drops and compactions of the chaos phase."""
        next_drop = time.monotonic() + self.config.drop_every
        while not stop.wait(0.2):
            self.fleet.tend()
            self.watchers.tend()
            if time.monotonic() >= next_drop:
                next_drop += self.config.drop_every
                self.drops += 1
                compact = self.drops % self.config.compact_every == 0
                if compact:
                    self.server.compact()
                    self.compactions += 1
                dropped = self.server.drop_watches()
                self.note(f"dropped {dropped} watches" + (" after compacting" if compact else ""))

    def chaos(self) -> None:
        """The timeline of faults; returns once they are all over."""
        config = self.config
        length = config.chaos_seconds
        rng = random.Random(config.seed)
        self.server.set_faults(api_faults(), seed=config.seed)
        self.note("API faults on")
        stop = threading.Event()
        helpers = [
            threading.Thread(
                target=self.create_all,
                args=(length * config.create_fraction, stop),
                name="create",
                daemon=True,
            ),
            threading.Thread(target=self.tend, args=(stop,), name="tend", daemon=True),
        ]
        for helper in helpers:
            helper.start()
        timeline = self._timeline(rng)
        started = time.monotonic()
        takeover: threading.Thread | None = None
        done_kills = 0
        try:
            while timeline:
                at, what = timeline[0]
                if time.monotonic() - started < at:
                    time.sleep(0.05)
                    continue
                timeline.pop(0)
                if what == "kill":
                    done_kills = self._kill(done_kills, at, timeline)
                elif what == "redis":
                    self.redis.restart(flush=True)
                    self.note("Redis restarted empty")
                elif what == "leader":
                    takeover = threading.Thread(target=self._kill_leader, daemon=True)
                    takeover.start()
                elif what == "outage":
                    self.tango.outage(True)
                    self.note("TANGO DB down")
                else:
                    self.tango.outage(False)
                    self.note("TANGO DB up")
            remaining = started + length - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            if takeover is not None:
                takeover.join(timeout=60)
        finally:
            stop.set()
            for helper in helpers:
                helper.join(timeout=60)
            self.server.clear_faults()
            self.tango.outage(False)
        self.note("API faults off")

    def _timeline(self, rng: random.Random) -> list[tuple[float, str]]:
        """The faults in time order: (seconds after the start of the chaos, what)."""
        config = self.config
        length = config.chaos_seconds
        kills = [
            length * (0.05 + 0.85 * (i + rng.random()) / config.kills) for i in range(config.kills)
        ]
        timeline: list[tuple[float, str]] = [(at, "kill") for at in kills]
        timeline += [
            (0.35 * length, "redis"),
            (0.55 * length, "leader"),
            (0.7 * length, "outage"),
            (0.7 * length + config.outage_seconds, "outage-end"),
        ]
        timeline.sort()
        return timeline

    def _kill(self, done_kills: int, at: float, timeline: list[tuple[float, str]]) -> int:
        """Kill a worker pod (every ``pod_kill_every``-th kill) or a pool child; the kills done.

        When every pod is restarting, the kill is put back into ``timeline`` a second later.
        """
        done_kills += 1
        if done_kills % self.config.pod_kill_every == 0:
            self.note(f"kill {done_kills}: worker pod {self.fleet.kill_pod()}")
            return done_kills
        how = self.fleet.rng.choice(["pool child", "pool child", "celery main", "in delivery"])
        if how == "in delivery":
            killed: int | str | None = "armed" if self.fleet.arm_delivery_kill() else None
        elif how == "celery main":
            killed = self.fleet.kill_main()
        else:
            killed = self.fleet.kill_child()
        if killed is None:  # every pod restarting, or the last arming not fired yet
            timeline.insert(0, (at + 1.0, "kill"))
            return done_kills - 1
        self.note(f"kill {done_kills}: {how} {killed}")
        return done_kills

    def _kill_leader(self) -> None:
        leader = self.watchers.kill_leader(timeout=self.config.watcher_lease[0] + 30)
        self.note(
            f"leader {leader} killed; {self.watchers.new_leader} took over after "
            f"{self.watchers.takeover_seconds:.1f}s"
        )


def _environment(config: Config, pool: WorkerPool, tango: TangoSide) -> dict[str, str]:
    duration, renew, retry = config.watcher_lease
    return {
        **pool.environment(),
        **tango.environment(),
        "TANGO_OPERATOR_TANGO_PORT": "tests.support.standin_tango:SoakStandIn",
        "TANGO_OPERATOR_DISPATCH": "fair",
        "TANGO_OPERATOR_LEASE_SECONDS": str(config.queue_lease_seconds),
        "TANGO_OPERATOR_WAITING_MAX_SECONDS": str(config.waiting_max_seconds),
        "TANGO_OPERATOR_RESYNC_SECONDS": str(config.resync_seconds),
        "TANGO_OPERATOR_DEVICE_HEALTH_SECONDS": str(config.device_health_seconds),
        "TANGO_OPERATOR_LEASE_NAMESPACE": "default",
        "TANGO_OPERATOR_LEASE_DURATION_SECONDS": str(duration),
        "TANGO_OPERATOR_LEASE_RENEW_SECONDS": str(renew),
        "TANGO_OPERATOR_LEASE_RETRY_SECONDS": str(retry),
    }


def run(config: Config, workdir: Path, api: ApiChoice = "kubeemu") -> Figures:
    """One soak in ``workdir`` on the API server ``api`` (logs and the trace stay there).

    The figures, with every problem the checks found in ``Figures.problems``.
    """
    began = time.time()
    scenario = plan.build(config.size)
    (workdir / "redis").mkdir(parents=True, exist_ok=True)
    with servers.start(api, workdir) as server, RedisServer(workdir / "redis") as redis:
        api_client = driver_client(server.kubeconfig)
        install_crds(api_client)
        core = client.CoreV1Api(api_client)
        for namespace in scenario.namespaces:
            core.create_namespace({"metadata": {"name": namespace}})
        pool = WorkerPool(
            kubeconfig=server.kubeconfig,
            redis_url=redis.url,
            workdir=workdir,
            concurrency=config.concurrency,
        )
        tango = TangoSide(server.kubeconfig, scenario, workdir)
        pool.extra_env.update(_environment(config, pool, tango))
        fleet = WorkerFleet(pool, config.worker_pods, random.Random(config.seed))
        watchers = WatcherPair(pool.environment(), workdir, api_client)
        soak = Run(config, workdir, scenario, server, redis, api_client, tango, fleet, watchers)
        stop_polling = threading.Event()
        poller = threading.Thread(target=soak.poll, args=(stop_polling, 3.0), daemon=True)
        try:
            tango.start()
            fleet.start()
            watchers.start()
            deadline = time.monotonic() + 60
            while watchers.holder() not in watchers.identities():
                if time.monotonic() > deadline:
                    raise AssertionError("no watcher took the Lease within 60s")
                time.sleep(0.2)
            soak.note(f"{watchers.holder()} leads")
            mark, chaos_began = server.mark(), time.time()
            poller.start()
            soak.chaos()
            faults_off = time.time()
            faults_off_mono = time.monotonic()
            converged_at = _converge(soak, faults_off_mono)
            time.sleep(5)  # the last transition's Event, trailing no-op follow-ups
            versions_before = soak.versions()
            quiet_began, quiet_began_mono = time.time(), time.monotonic()
            time.sleep(config.quiet_seconds)
            quiet_ended, quiet_ended_mono = time.time(), time.monotonic()
            stop_polling.set()
            versions_after = soak.versions()
            observed = soak.observe()
            children = soak.children()
            faults_injected = server.faults_injected()
            records = server.records(mark)
            # the writes the server's records leave undecided (the real server's), by version
            settle_changes(records, versions_before, versions_after, quiet_began, quiet_ended)
            traffic = Traffic.of(records)
            servers.dump(records, workdir / "audit.jsonl")  # for a post-mortem
        finally:
            stop_polling.set()
            watchers.stop()
            fleet.stop()
            tango.stop()
            api_client.close()
    fleet.record_delivery_deaths()
    windows = checks.reconciles(pool.trace)
    entries = Counter(w.key for w in windows if quiet_began_mono <= w.enter < quiet_ended_mono)
    periods = checks.Periods(
        config.resync_seconds,
        config.waiting_max_seconds,
        config.watcher_lease[2],
        SOURCES,
        config.device_health_seconds,
    )
    quiet = traffic.between(quiet_began, quiet_ended)
    problems = [
        *checks.final_state_problems(scenario, observed),
        *checks.children_problems(scenario, observed, children),
        *checks.overlap_problems(pool.trace, fleet.deaths),
        *checks.quiet_problems(scenario, quiet, entries, quiet_ended - quiet_began, periods),
    ]
    if converged_at is None:
        problems.insert(0, f"not converged {config.converge_timeout:.0f}s after the faults")
    if watchers.takeover_seconds is None:
        problems.append("the leader was not killed, or no standby took over")
    if fleet.kills != config.kills:
        problems.append(f"{fleet.kills} kills of {config.kills}")
    timeline = Timeline(chaos_began, soak.events, soak.samples, config.timeline_bucket)
    return Figures(
        config=config,
        server=api,
        injector=server.injector,
        notes=REAL_SERVER_NOTES if api == "real" else (),
        plan=scenario,
        seconds=time.time() - began,
        chaos_began=chaos_began,
        faults_off=faults_off,
        converged_after=None if converged_at is None else converged_at - faults_off_mono,
        quiet=(quiet_began, quiet_ended),
        quiet_mono=(quiet_began_mono, quiet_ended_mono),
        traffic=traffic,
        windows=windows,
        fleet=fleet,
        watchers=watchers,
        drops=soak.drops,
        compactions=soak.compactions,
        faults_injected=faults_injected,
        lost_resent=sum(
            log.read_text(errors="replace").count("message lost on its way to a worker")
            for log in workdir.rglob("*.log")
        ),
        timeline=timeline,
        problems=problems,
    )


def _converge(soak: Run, since: float) -> float | None:
    """Wait until every CR is in its final state; when (time.monotonic()), or None."""
    deadline = since + soak.config.converge_timeout
    while time.monotonic() < deadline:
        count = checks.converged(soak.plan, soak.observe())
        soak.samples.append((time.time(), count))
        if count == len(soak.plan.resources):
            converged = time.monotonic()
            soak.note(f"all {count} CRs final, {converged - since:.1f}s after the faults")
            return converged
        time.sleep(1.0)
    soak.note("not converged")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the make-test size")
    parser.add_argument("--chaos-seconds", type=float)
    parser.add_argument(
        "--api",
        choices=servers.API_CHOICES,
        default="kubeemu",
        help="the API server: kubeemu, or real (kube-apiserver from `make controlplane`, "
        "faults by devstack.faultproxy)",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and trace here")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    config = SHORT if options.short else FULL
    if options.chaos_seconds:
        config = replace(config, chaos_seconds=options.chaos_seconds)
    if options.workdir:
        options.workdir.mkdir(parents=True, exist_ok=True)
        figures = run(config, options.workdir, options.api)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
            figures = run(config, Path(scratch), options.api)
    print(figures.markdown(), flush=True)
    if figures.problems:
        print("\nFAILED:\n" + "\n".join(figures.problems[:50]), flush=True)
        return 1
    if not options.no_doc:
        write_doc(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
