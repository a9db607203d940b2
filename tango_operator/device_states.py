"""The summary of a DeviceServer's device states, as the workers write it and the watcher reads it.

``summarize`` turns the TANGO State of each device (read by the workers,
``workers.reconcile.device_health``) into ``status.deviceSummary`` — ``3/3 ON``, or with
several states the most common first, ``2/3 ON, 1 FAULT`` — the printer column of
``kubectl get deviceservers``. ``counts`` reads that text back into a count per state for the
watcher's metric (``watcher.metrics``), which sees the CRs but not the devices. The two are
each other's inverse (tested), so the format is defined here only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

UNHEALTHY = ("FAULT", "UNKNOWN", "ALARM")
"""Unhealthy TANGO states, worst first; every other state is one a device chose."""

_FIRST = re.compile(r"(\d+)/(\d+) (\S+)")
_OTHER = re.compile(r"(\d+) (\S+)")


def severity(state: str) -> int:
    """0 for FAULT, 1 for UNKNOWN, 2 for ALARM, 3 for every healthy state."""
    return UNHEALTHY.index(state) if state in UNHEALTHY else len(UNHEALTHY)


def summarize(states: Iterable[str]) -> str:
    """``3/3 ON``; mixed: by count, then worst first, ``1/3 FAULT, 1 ALARM, 1 ON``; "" if none."""
    counted = Counter(states)
    if not counted:
        return ""
    total = sum(counted.values())
    ordered = sorted(counted.items(), key=lambda item: (-item[1], severity(item[0]), item[0]))
    (first, first_count), rest = ordered[0], ordered[1:]
    return ", ".join([f"{first_count}/{total} {first}", *(f"{n} {state}" for state, n in rest)])


def counts(summary: str) -> dict[str, int]:
    """The count per state of a ``summarize`` text; {} for anything else."""
    parts = summary.split(", ") if summary else []
    if not parts:
        return {}
    first = _FIRST.fullmatch(parts[0])
    if first is None:
        return {}
    found = {first.group(3): int(first.group(1))}
    for part in parts[1:]:
        other = _OTHER.fullmatch(part)
        if other is None:
            return {}
        found[other.group(2)] = int(other.group(1))
    if sum(found.values()) != int(first.group(2)):
        return {}
    return found
