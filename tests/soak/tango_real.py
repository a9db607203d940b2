"""The soak on real TANGO: a DataBaseds that hangs, device servers that restart, through faults.

The fault soak (``tests.soak.soak``) drives 500 DeviceServers with the TANGO stand-in; this one
runs what the machine carries with every TANGO part real (the local stack of ``make demo``:
kubeemu, redis-server, the watcher, two ``tango-operator worker`` processes with the PyTango
side, the local kubelet running PyTango's DataBaseds and one device server process per
DeviceServer). The timeline (``Config``), all at once:

* the API fault mix of issue 18 (``tests.soak.chaos.api_faults``: 0-200 ms jitter, 5 % 500,
  5 % 503, 5 % 429 with Retry-After) for ``chaos_seconds``, every watch dropped every
  ``drop_every`` seconds, the first drop with a compaction;
* ``kills`` SIGKILLs of a worker's Celery process at random instants (its supervisor starts a
  new one), each other one armed inside kombu's delivery (``tests.support.kill_in_delivery``);
* every DeviceServer's configuration changed (its device's ``label`` property), so the
  workers write the TANGO DB and roll the pods during the faults;
* the DataBaseds SIGSTOPped for ``outage_seconds``: the real hang, where every TANGO call
  runs into its deadline (not a refused connection).

Then the faults stop. Checked (``Figures.problems``): every DeviceServer Running within
``converge_timeout`` with its last generation observed, its device exported and the DB
holding its last ``label``; then, over a quiet window that includes a resync, no write to the
TANGO DB (its own call counters) and no write to the API but the Lease's.

Run it with ``make soak-tango`` (writes its table into docs/benchmarks.md); the short form is
``tests/soak/test_soak_tango.py`` in ``make test``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import tango
from kubernetes import client

from devstack.stack import LocalStack, StackOptions, cluster_tango_host
from devstack.stack_api import EmulatedApi
from tango_operator import crd
from tests.bench.report import write_section
from tests.soak.chaos import api_faults, children
from tests.support.probe_server import SERVER_SCRIPT

JsonDict = dict[str, Any]
T = TypeVar("T")
NAMESPACE, DATABASEDS = "soak", "tango-db"
DB_WRITES = ("DbPut", "DbAdd", "DbDelete")


@dataclass(frozen=True)
class Config:
    servers: int = 6
    chaos_seconds: float = 45.0
    drop_every: float = 12.0
    kills: int = 6
    outage_seconds: float = 8.0
    converge_timeout: float = 150.0
    quiet_seconds: float = 15.0
    resync_seconds: float = 10.0
    seed: int = 18


SHORT = Config()


@dataclass
class Figures:
    config: Config
    notes: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    delivery_kills_fired: int = 0
    faults_injected: int = 0
    lost_resent: int = 0
    converged_after: float | None = None
    quiet_db_writes: dict[str, int] = field(default_factory=dict)
    quiet_api_writes: int = 0
    problems: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        config = self.config
        converged = (
            f"{self.converged_after:.1f} s after the faults stopped"
            if self.converged_after is not None
            else f"not within {config.converge_timeout:.0f} s"
        )
        return [
            (
                "size",
                f"{config.servers} DeviceServers (PyTango servers), 1 DatabaseDS (PyTango "
                "DataBaseds), 2 worker processes",
            ),
            ("API faults", f"{self.faults_injected} injected in {config.chaos_seconds:.0f} s"),
            (
                "kills (SIGKILL)",
                f"{self.kills.get('celery main', 0)} Celery processes at random instants, "
                f"{self.kills.get('in delivery', 0)} armed inside kombu's delivery "
                f"({self.delivery_kills_fired} fired)",
            ),
            ("messages lost and sent again", f"{self.lost_resent} (the watcher's pump)"),
            ("TANGO DB outage", f"DataBaseds SIGSTOPped for {config.outage_seconds:.0f} s"),
            ("converged", converged),
            (
                "quiet window",
                f"{config.quiet_seconds:.0f} s with a resync: TANGO DB writes "
                f"{sum(self.quiet_db_writes.values())}, API writes {self.quiet_api_writes}",
            ),
            ("problems", "; ".join(self.problems) or "none"),
        ]

    def markdown(self) -> str:
        lines = [
            f"`make soak-tango` ({date.today().isoformat()}, {os.cpu_count()} cores):",
            "",
            "| | |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)


def _retrying(call: Callable[[], T], attempts: int = 30) -> T:
    """The soak's own API calls go through the faults too."""
    for attempt in range(attempts):
        try:
            return call()
        except client.ApiException as exc:
            if exc.status is not None and exc.status < 500 and exc.status not in (409, 429):
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _device_server(name: str, label: str) -> JsonDict:
    config = {
        "servers": {
            "Probe": {name: {"Probe": {f"soak/{name}/1": {"properties": {"label": [label]}}}}}
        }
    }
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "dsname": "Probe",
            "args": name,
            "image": "registry.example/probe:1",
            "databaseds": DATABASEDS,
            "script": SERVER_SCRIPT,
            "config": json.dumps(config),
        },
    }


class Soak:
    """One run: the stack, the timeline, the checks."""

    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.figures = Figures(config, kills={"celery main": 0, "in delivery": 0})
        self.armed = workdir / "kill-in-delivery"
        self.stack = LocalStack(
            StackOptions(
                workdir=workdir,
                api="kubeemu",
                databaseds=((NAMESPACE, DATABASEDS),),
                workers=2,
                flower=False,
                environment={
                    "TANGO_OPERATOR_RESYNC_SECONDS": str(config.resync_seconds),
                    "TANGO_KILL_IN_DELIVERY": str(self.armed),
                },
                worker_includes=("tests.support.kill_in_delivery",),
            )
        )
        self.names = [f"probe-{index}" for index in range(config.servers)]

    @property
    def emulator(self) -> Any:
        api = self.stack.api
        assert isinstance(api, EmulatedApi)
        assert api.emulator is not None
        return api.emulator

    @property
    def custom(self) -> client.CustomObjectsApi:
        assert self.stack.api_client is not None
        return client.CustomObjectsApi(self.stack.api_client)

    def tango_host(self) -> str:
        return self.stack.host_map[cluster_tango_host(DATABASEDS, NAMESPACE)]

    def run(self) -> Figures:
        self.stack.start()
        try:
            self._create()
            self._chaos()
            self._converge()
            if self.figures.converged_after is not None:
                self._quiet()
        finally:
            self.figures.lost_resent = sum(
                log.read_text(errors="replace").count("message lost on its way to a worker")
                for log in self.stack.logs.glob("*.log")
            )
            self.figures.delivery_kills_fired = len(
                list(self.armed.parent.glob(f"{self.armed.name}.fired-by-*"))
            )
            self.stack.stop()
        return self.figures

    def _create(self) -> None:
        assert self.stack.api_client is not None
        client.CoreV1Api(self.stack.api_client).create_namespace({"metadata": {"name": NAMESPACE}})
        database = {
            "apiVersion": crd.API_VERSION,
            "kind": "DatabaseDS",
            "metadata": {"name": DATABASEDS},
        }
        self.custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NAMESPACE, "databaseds", database
        )
        for name in self.names:
            self.custom.create_namespaced_custom_object(
                crd.GROUP, crd.VERSION, NAMESPACE, "deviceservers", _device_server(name, "v1")
            )

    def _chaos(self) -> None:
        config = self.config
        self.emulator.set_faults(api_faults(), seed=config.seed)
        began = time.monotonic()
        timeline: list[tuple[float, str]] = [
            (config.drop_every * (n + 1), "drop")
            for n in range(int(config.chaos_seconds // config.drop_every))
        ]
        timeline += [
            (config.chaos_seconds * (k + 0.5) / config.kills, "kill") for k in range(config.kills)
        ]
        timeline += [(config.chaos_seconds / 3, "change"), (config.chaos_seconds / 2, "outage")]
        timeline.sort()
        drops = 0
        for at, what in timeline:
            time.sleep(max(0.0, began + at - time.monotonic()))
            if what == "drop":
                self.emulator.drop_watches()
                if drops == 0:
                    self.emulator.compact()
                drops += 1
            elif what == "kill":
                self._kill()
            elif what == "change":
                for name in self.names:
                    _retrying(lambda n=name: self._set_label(n, "v2"))  # type: ignore[misc]
            else:
                self._outage(until=began + config.chaos_seconds)
        time.sleep(max(0.0, began + config.chaos_seconds - time.monotonic()))
        self.figures.faults_injected = int(self.emulator.stats().get("faultsInjected", 0))
        self.emulator.clear_faults()

    def _set_label(self, name: str, label: str) -> None:
        self.custom.patch_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NAMESPACE, "deviceservers", name,
            {"spec": {"config": _device_server(name, label)["spec"]["config"]}},
        )  # fmt: skip

    def _kill(self) -> None:
        if sum(self.figures.kills.values()) % 2 == 1 and not self.armed.exists():
            self.armed.touch()
            self.figures.kills["in delivery"] += 1
            return
        supervisors = [p for n, p in self.stack.processes.items() if n.startswith("worker")]
        mains = [pid for supervisor in supervisors for pid in children(supervisor.pid)]
        if mains:
            os.kill(self.rng.choice(mains), signal.SIGKILL)
            self.figures.kills["celery main"] += 1

    def _databaseds_pid(self) -> int | None:
        """The DataBaseds process, from the local kubelet that runs its pod.

        (Scanning /proc/net/tcp for its listening port missed it once under the soak's
        connection churn: that file is not read atomically.)
        """
        kubelet = self.stack.kubelet
        if kubelet is None:
            return None
        for local in list(kubelet.running.values()):
            if local is not None and local.name == f"{NAMESPACE}/{DATABASEDS}-0":
                process = local.process
                return process.pid if process is not None else None
        return None

    def _outage(self, *, until: float) -> None:
        """SIGSTOP the DataBaseds for the outage's length.

        At half-time, or as soon as its pod runs after that: under faults, kills and a loaded
        machine the DatabaseDS's pod has been seen to start later than half-time. Not running
        by the end of the chaos is a problem of the run.
        """
        pid = self._databaseds_pid()
        while pid is None and time.monotonic() < until:
            time.sleep(0.2)
            pid = self._databaseds_pid()
        if pid is None:
            self.figures.problems.append("no DataBaseds process found for the outage")
            return
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.config.outage_seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    def _converged(self) -> list[str]:
        """What is not yet as it must end (empty: converged)."""
        missing = []
        host, _, port = self.tango_host().rpartition(":")
        try:
            database = tango.Database(host, int(port))
        except tango.DevFailed:
            return ["the TANGO DB does not answer"]
        for name in self.names:
            found = self.custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, NAMESPACE, "deviceservers", name
            )
            status = found.get("status") or {}
            device = f"soak/{name}/1"
            try:
                label = list(database.get_device_property(device, ["label"])["label"])
                exported = bool(database.get_device_info(device).exported)
            except tango.DevFailed:
                label, exported = [], False
            if status.get("state") != "Running":
                missing.append(f"{name} {status.get('state')}")
            elif status.get("observedGeneration") != found["metadata"]["generation"]:
                missing.append(f"{name} generation not observed")
            elif label != ["v2"] or not exported:
                missing.append(f"{name} label {label} exported {exported}")
        return missing

    def _converge(self) -> None:
        stopped = time.monotonic()
        missing: list[str] = []
        while time.monotonic() - stopped < self.config.converge_timeout:
            missing = self._converged()
            if not missing:
                self.figures.converged_after = time.monotonic() - stopped
                return
            time.sleep(1.0)
        self.figures.problems.append(f"not converged: {', '.join(missing)}")

    def _db_writes(self) -> dict[str, int]:
        proxy = tango.DeviceProxy(f"tango://{self.tango_host()}/sys/database/2")
        names = proxy.read_attribute("Timing_index").value
        counts = proxy.read_attribute("Timing_calls").value
        return {
            str(n): int(c)
            for n, c in zip(names, counts, strict=True)
            if str(n).startswith(DB_WRITES)
        }

    def _quiet(self) -> None:
        before_db = self._db_writes()
        mark = self.emulator.mark()
        time.sleep(self.config.quiet_seconds)
        after_db = self._db_writes()
        self.figures.quiet_db_writes = {
            name: after_db[name] - before_db.get(name, 0)
            for name in after_db
            if after_db[name] != before_db.get(name, 0)
        }
        # the Node's heartbeat (its Lease, its status every minute) is the kubelet's, not ours
        writes = [
            r
            for r in self.emulator.mutations(mark)
            if r["resource"] not in ("leases", "events", "nodes")
        ]
        self.figures.quiet_api_writes = len(writes)
        if self.figures.quiet_db_writes:
            self.figures.problems.append(
                f"TANGO DB written while quiet: {self.figures.quiet_db_writes}"
            )
        if writes:
            self.figures.problems.append(
                "API written while quiet: "
                + ", ".join(f"{r['verb']} {r['resource']}/{r['name']}" for r in writes[:5])
            )


def run(config: Config, workdir: Path) -> Figures:
    return Soak(config, workdir).run()


KEPT_LOGS = Path(__file__).resolve().parents[2] / ".cache" / "soak-tango"


def keep_logs(workdir: Path) -> Path:
    """Copy a failed run's process logs out of its scratch directory; returns where to.

    The scratch directory does not outlive the run (``make soak-tango``) or is pruned by
    pytest after a few sessions (``make test`` runs several), so a failure's watcher, worker,
    DataBaseds and device server logs are kept in ``.cache/soak-tango/<time>/``.
    """
    kept = KEPT_LOGS / time.strftime("%Y%m%d-%H%M%S")
    shutil.copytree(workdir / "logs", kept, dirs_exist_ok=True)
    return kept


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="soak-tango-") as scratch:
        figures = run(SHORT, Path(scratch))
        kept = keep_logs(Path(scratch)) if figures.problems else None
    table = figures.markdown()
    print(table)
    write_section("soak-tango", table)
    if figures.problems:
        print(f"problems: {figures.problems}\nlogs kept in {kept}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
