"""TANGO's own view of a Running DeviceServer in its status: each device's State, a summary.

Input: the :class:`~workers.reconcile.ports.DeviceHealth` list that the TangoPort read for
a Running server (``workers.reconcile.deviceserver``, at most once per
``TANGO_OPERATOR_DEVICE_HEALTH_SECONDS``). Output: the status fields ``deviceHealth`` (each
device: exported, State, Status) and ``deviceSummary`` (``3/3 ON``, the printer column),
the ``DevicesHealthy`` condition, and an Event when that condition changes. The watcher
exports the states per DeviceServer as a metric (``watcher.metrics``) from the same status.

Healthy means no device in FAULT, ALARM or UNKNOWN (not read: no answer, not exported).
Every other TANGO state — ON, OFF, STANDBY, RUNNING, MOVING, INIT, DISABLE, ... — is a
state the device chose and reports normally.
"""

from __future__ import annotations

import random
from typing import Any

from tango_operator.device_states import UNHEALTHY, severity, summarize
from workers.reconcile.ports import DeviceHealth, KubePort
from workers.reconcile.status import Condition

JsonDict = dict[str, Any]

CONDITION = "DevicesHealthy"
REASONS = {"FAULT": "DeviceFault", "UNKNOWN": "DeviceUnknown", "ALARM": "DeviceAlarm"}
"""The condition's reason for each unhealthy state."""
MAX_ENTRIES = 64
"""Devices listed in ``status.deviceHealth`` (unhealthy ones first); the summary counts all."""
MAX_MESSAGE = 1024


def summary(health: list[DeviceHealth]) -> str:
    """``3/3 ON``; mixed: the most common state first, ``2/3 ON, 1 FAULT``."""
    return summarize(entry.state for entry in health)


def status_fields(health: list[DeviceHealth]) -> JsonDict:
    """``deviceHealth`` (bounded, unhealthy devices first) and ``deviceSummary``."""
    listed = sorted(health, key=lambda entry: severity(entry.state) == len(UNHEALTHY))
    return {
        "deviceHealth": [
            {
                "name": entry.name,
                "exported": entry.exported,
                "state": entry.state,
                "status": entry.status,
            }
            for entry in listed[:MAX_ENTRIES]
        ],
        "deviceSummary": summary(health),
    }


def condition(health: list[DeviceHealth]) -> Condition:
    """``DevicesHealthy``: False with the worst state's reason and the devices in it."""
    worst = min((severity(entry.state) for entry in health), default=len(UNHEALTHY))
    if worst == len(UNHEALTHY):
        return Condition(CONDITION, True, "Healthy", summary(health))
    state = UNHEALTHY[worst]
    named = "; ".join(
        f"{entry.name} {entry.state}: {entry.status}" if entry.status else f"{entry.name} {state}"
        for entry in health
        if entry.state == state
    )
    return Condition(CONDITION, False, REASONS[state], named[:MAX_MESSAGE])


def announce(kube: KubePort, resource: JsonDict, before: JsonDict, now: Condition) -> None:
    """An Event when ``DevicesHealthy`` changes reason: Warning when it turns unhealthy.

    ``before`` is the status stored before this reconcile. The first health read of a
    healthy server says nothing (its Running Event has just been recorded).
    """
    previous = next(
        (
            c
            for c in before.get("conditions") or []
            if isinstance(c, dict) and c.get("type") == CONDITION
        ),
        None,
    )
    if previous is not None and previous.get("reason") == now.reason:
        return
    if now.status:
        if previous is None or previous.get("status") == "True":
            return
        kube.emit_event(resource, event_type="Normal", reason="DevicesHealthy", message=now.message)
        return
    kube.emit_event(resource, event_type="Warning", reason=now.reason, message=now.message)


def next_read(interval: float) -> float:
    """When to read the devices again: ``interval`` ±10 %, so servers do not read in step."""
    return interval * random.uniform(0.9, 1.1)
