"""The soak's verdicts. Each check returns the problems it found (empty: passed).

Inputs come from ``tests.soak.soak``: the custom resources and their children as listed
from the API server at the end, the reconcile trace the stand-in wrote in every worker process
(``tests.support.standin_tango.trace_reconciles``) with the pids the soak killed, and the
audit log's traffic (``tests.soak.traffic``). Expectations come from ``tests.soak.plan``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tango_operator.keys import Key
from tests.soak.plan import CHILD_KINDS, Expected, Plan
from tests.soak.traffic import Traffic
from tests.support.standin_tango import overlapping_windows

JsonDict = dict[str, Any]
ObjectId = tuple[str, str, str]
"""(kind, namespace, name)."""


def key_of(expected: Expected) -> str:
    return Key(expected.kind, expected.namespace, expected.name).encode()


def _ready_condition(status: JsonDict) -> JsonDict:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def final_state_problems(plan: Plan, observed: dict[ObjectId, JsonDict]) -> list[str]:
    """Every CR in its expected state, Ready condition and message."""
    problems = []
    for expected in plan.resources:
        found = observed.get((expected.kind, expected.namespace, expected.name))
        if found is None:
            problems.append(f"{expected.label}: missing")
            continue
        status = found.get("status") or {}
        ready = _ready_condition(status)
        want_ready = "True" if expected.state == "Running" else "False"
        seen = (
            status.get("state"),
            ready.get("status"),
            ready.get("reason"),
            status.get("message"),
        )
        wanted = (expected.state, want_ready, expected.reason, expected.message)
        if seen != wanted:
            problems.append(f"{expected.label}: (state, Ready, reason, message) {seen} != {wanted}")
    return problems


def converged(plan: Plan, observed: dict[ObjectId, JsonDict]) -> int:
    """How many CRs are in their expected final state."""
    return len(plan.resources) - len(final_state_problems(plan, observed))


def children_problems(
    plan: Plan, observed: dict[ObjectId, JsonDict], children: list[JsonDict]
) -> list[str]:
    """Exactly the expected children per CR, by controller ownerReference.

    Nothing unowned or owned by something that is not one of the CRs; the StatefulSet replicas.
    """
    uids = {
        str((observed.get((e.kind, e.namespace, e.name)) or {}).get("metadata", {}).get("uid")): e
        for e in plan.resources
    }
    counts: dict[str, Counter[str]] = {uid: Counter() for uid in uids}
    problems = []
    replicas: dict[str, int] = {}
    for child in children:
        meta = child["metadata"]
        what = f"{child['kind']} {meta['namespace']}/{meta['name']}"
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        if len(owners) != 1 or owners[0].get("uid") not in uids:
            problems.append(f"{what}: not owned by one of the soak's CRs ({owners})")
            continue
        uid = str(owners[0]["uid"])
        counts[uid][child["kind"]] += 1
        if child["kind"] == "StatefulSet" and uids[uid].kind == "DeviceServer":
            replicas[uid] = int((child.get("spec") or {}).get("replicas") or 0)
    for uid, expected in uids.items():
        wanted = {kind: expected.children.get(kind, 0) for kind in CHILD_KINDS}
        got = {kind: counts[uid][kind] for kind in CHILD_KINDS}
        if got != wanted:
            problems.append(f"{expected.label}: children {got} != {wanted}")
        if expected.replicas is not None and replicas.get(uid) != expected.replicas:
            problems.append(
                f"{expected.label}: StatefulSet replicas {replicas.get(uid)} != {expected.replicas}"
            )
    return problems


@dataclass(frozen=True)
class Window:
    """One reconcile as traced: pid, key, enter and exit (None: the process was killed)."""

    pid: int
    key: str
    enter: float
    exit: float | None


def reconciles(trace: Path) -> list[Window]:
    """The trace's reconciles, pairing each ``enter`` with its pid's next ``exit``."""
    open_: dict[int, tuple[str, float]] = {}
    windows: list[Window] = []
    if not trace.exists():
        return windows
    for line in trace.read_text().splitlines():
        event, pid_text, key, stamp = line.split()
        pid = int(pid_text)
        if event == "enter":
            if pid in open_:  # its exit never came: the process died (and the pid came back)
                windows.append(Window(pid, *open_.pop(pid), None))
            open_[pid] = (key, float(stamp))
        elif pid in open_:
            entered_key, entered = open_.pop(pid)
            windows.append(Window(pid, entered_key, entered, float(stamp)))
    windows.extend(Window(pid, key, entered, None) for pid, (key, entered) in open_.items())
    return sorted(windows, key=lambda w: w.enter)


def overlap_problems(trace: Path, deaths: dict[int, float]) -> list[str]:
    """No key reconciled by two processes at once (killed processes end at their death)."""
    if not trace.exists():
        return [f"{trace}: no reconcile trace was written"]
    return [f"{key}: {detail}" for key, detail in overlapping_windows(str(trace), deaths)]


@dataclass(frozen=True)
class Periods:
    """The settings that set how often a converged operator may look at a CR."""

    resync: float
    waiting_max: float
    lease_retry: float
    sources: int
    """List + watch sources of the leading watcher."""
    device_health: float = 0.0
    """How often a Running server's devices are read (±10 %); 0: never."""


def quiet_problems(
    plan: Plan,
    quiet: Traffic,
    entries: Counter[str],
    seconds: float,
    periods: Periods,
) -> list[str]:
    """After convergence, with no fault.

    No write at all but the leader's Lease renewals; no CR reconciled more often than its resync
    (or, for the cycle's members, their slow re-check; for a Running server with devices, the
    read of their states) allows; the watcher's lists, watches and
    Lease calls within their periods. ``entries`` counts reconciles per key that started in the
    window.
    """
    problems: list[str] = []
    writes = quiet.writes()
    problems.extend(
        f"write while converged: {r['verb']} {r['path']} by {r['user_agent']}" for r in writes[:20]
    )
    resyncs = math.ceil(seconds / periods.resync) + 1
    for expected in plan.resources:
        allowed = resyncs  # one per resync, and one at the window's edge
        if expected.reason == "DependencyCycle":  # looked at again every waiting_max
            allowed += math.ceil(seconds / periods.waiting_max)
        if expected.state == "Running" and expected.devices and periods.device_health > 0:
            # its devices' State and Status are read again at that rate (reads only)
            allowed += math.ceil(seconds / (0.9 * periods.device_health))
        count = entries.get(key_of(expected), 0)
        if count > allowed:
            problems.append(
                f"{expected.label}: {count} reconciles in {seconds:.0f}s converged "
                f"(at most {allowed})"
            )
    watcher = [r for r in quiet.records if r["resource"] == "leases" or not r["namespace"]]
    lists = sum(1 for r in watcher if r["verb"] == "list")
    if lists > 2 * resyncs:
        problems.append(f"watcher: {lists} lists in {seconds:.0f}s converged (resyncs: {resyncs})")
    watches = sum(1 for r in watcher if r["verb"] == "watch")
    if watches > 2 * periods.sources:
        problems.append(f"watcher: {watches} watches started in {seconds:.0f}s converged")
    leases = sum(1 for r in watcher if r["resource"] == "leases")
    # each of the two replicas reads the Lease (and the leader writes it) once a period
    lease_budget = 2 * 2 * math.ceil(seconds / periods.lease_retry) + 4
    if leases > lease_budget:
        problems.append(f"watchers: {leases} Lease requests in {seconds:.0f}s (>{lease_budget})")
    return problems
