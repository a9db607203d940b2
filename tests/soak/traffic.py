"""The API traffic of a soak, from kubeemu's audit log.

Every record (``KubeEmu.audit``: verb, path, namespace, user agent, code, injected fault,
whether it changed the store, start time) is attributed to who sent it:

- ``driver`` — the soak itself (``tests.soak.tango_side.DRIVER_AGENT``): creating the CRs,
  following StatefulSets for the TANGO side, polling for convergence, reading the Lease;
- ``watcher`` — Leases, and the cluster-wide lists and watches (the sources and the
  resync; ``TANGO_OPERATOR_NAMESPACES`` is unset, so the watcher never asks per namespace);
- ``worker`` — everything else: the workers only ever read and write in a CR's namespace.

``tests.soak.checks`` and ``tests.soak.report`` read the counts and rates from here.
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
    """A write that changed the store."""
    return record["verb"] in MUTATING_VERBS and bool(record["changed"])


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
