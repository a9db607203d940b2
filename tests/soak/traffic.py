"""The API traffic of a soak, from the server's audit log.

Every record (``tests.soak.servers.RECORD_FIELDS``: verb, path, namespace, user agent, code,
injected fault, whether it changed the store, start time; from kubeemu's audit log, or on the
real server from kube-apiserver's and the fault proxy's) is attributed to who sent it:

- ``driver`` — the soak itself (``tests.soak.tango_side.DRIVER_AGENT``): creating the CRs,
  following StatefulSets for the TANGO side, polling for convergence, reading the Lease;
- ``watcher`` — Leases, and the cluster-wide lists and watches (the sources and the
  resync; ``TANGO_OPERATOR_NAMESPACES`` is unset, so the watcher never asks per namespace);
- ``worker`` — everything else: the workers only ever read and write in a CR's namespace.

``changed`` is None where the server does not say (kube-apiserver's audit log): such a write
counts as a mutation when it succeeded (an upper bound: no-op writes included) until
``settle_changes`` decides it from the objects' resourceVersions, as the soak does for its
quiet window. ``tests.soak.checks`` and ``tests.soak.report`` read the counts and rates from
here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubeemu.testing import MUTATING_VERBS
from tests.soak.tango_side import DRIVER_AGENT

JsonDict = dict[str, Any]


def sender(record: JsonDict) -> str:
    if str(record.get("user_agent", "")).startswith(DRIVER_AGENT):
        return "driver"
    if record["resource"] == "leases" or not record["namespace"]:
        return "watcher"
    return "worker"


def is_mutation(record: JsonDict) -> bool:
    """A write that changed the store (``changed`` unknown: a write that succeeded)."""
    if record["verb"] not in MUTATING_VERBS:
        return False
    changed = record.get("changed")
    if changed is None:
        return not record.get("injected") and 200 <= int(record.get("code") or 0) < 300
    return bool(changed)


ObjectRef = tuple[str, str, str, str]
"""(API group, resource, namespace, name)."""


def settle_changes(
    records: Iterable[JsonDict],
    before: dict[ObjectRef, str],
    after: dict[ObjectRef, str],
    start: float,
    end: float,
) -> int:
    """Decide the unknown ``changed`` of the writes in [start, end); how many it decided.

    ``before`` and ``after`` are the resourceVersions of the objects that may be written,
    listed just before ``start`` and at ``end``: an object whose version did not move was not
    changed by any write in between (a server-side apply or patch that changes nothing leaves
    the resourceVersion as it was). A write that failed changed nothing, a create or delete
    that succeeded did; a patch or update that succeeded changed something if its object's
    version moved (or the object came or went) — also when someone else moved it, so the
    verdict errs towards "changed". Writes to objects outside ``before``/``after``'s kinds
    stay unknown.
    """
    kinds = {(group, resource) for group, resource, _, _ in (*before, *after)}
    decided = 0
    for record in records:
        if record.get("changed") is not None or record["verb"] not in MUTATING_VERBS:
            continue
        if not start <= record["time"] < end:
            continue
        ok = not record.get("injected") and 200 <= int(record.get("code") or 0) < 300
        ref = (record["group"], record["resource"], record["namespace"], record["name"])
        if not ok:
            record["changed"] = False
        elif record["verb"] in ("create", "delete", "deletecollection"):
            record["changed"] = True
        elif (ref[0], ref[1]) in kinds and ref[3]:
            record["changed"] = before.get(ref) != after.get(ref)
        else:
            continue
        decided += 1
    return decided


@dataclass
class Traffic:
    records: list[JsonDict]
    """The operator's requests (driver's excluded), oldest first."""
    driver: list[JsonDict]

    @classmethod
    def of(cls, records: Iterable[JsonDict]) -> Traffic:
        mine: list[JsonDict] = []
        driver: list[JsonDict] = []
        for record in records:
            (driver if sender(record) == "driver" else mine).append(record)
        return cls(mine, driver)

    def between(self, start: float, end: float) -> Traffic:
        """Requests that started in [start, end) (wall clock, time.time())."""
        return Traffic(
            [r for r in self.records if start <= r["time"] < end],
            [r for r in self.driver if start <= r["time"] < end],
        )

    def by_sender(self) -> Counter[str]:
        return Counter(sender(r) for r in self.records)

    def mutations(self) -> list[JsonDict]:
        return [r for r in self.records if is_mutation(r)]

    def writes(self) -> list[JsonDict]:
        """The mutations but the Lease renewals of the leading watcher."""
        return [r for r in self.mutations() if r["resource"] != "leases"]

    def injected(self) -> Counter[str]:
        """Faults injected into the operator's requests, by status code."""
        return Counter(r["injected"] for r in self.records if r.get("injected"))

    def peak_rate(self, start: float, end: float, bucket: float = 5.0) -> float:
        """The highest request rate (per second) over ``bucket``-long windows."""
        counts = self.series(start, end, bucket)
        return max(counts, default=0) / bucket

    def series(self, start: float, end: float, bucket: float) -> list[int]:
        """Requests per ``bucket`` seconds from ``start`` to ``end``."""
        counts = [0] * max(1, math.ceil((end - start) / bucket))
        for record in self.records:
            index = int((record["time"] - start) // bucket)
            if 0 <= index < len(counts):
                counts[index] += 1
        return counts
