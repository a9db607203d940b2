"""Status of the custom resources: conditions, the one status patch, the transition Event.

The reconcilers describe the status they observed (state, message, conditions without
timestamps); this module merges it with the stored status (a condition keeps its
``lastTransitionTime`` while its status does not change), patches ``/status`` only when
something changed, and records a Kubernetes Event when ``state`` changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workers.reconcile.ports import KubePort
from workers.settings import Settings

JsonDict = dict[str, Any]

WARNING_STATES = frozenset({"Error"})


@dataclass(frozen=True)
class Condition:
    """One status condition as a reconciler observed it, without timestamps."""

    type: str
    status: bool
    reason: str
    message: str = ""

    def as_dict(self, generation: int, now: str) -> JsonDict:
        """The condition as stored in the status, stamped with ``generation`` and ``now``."""
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }


def now_rfc3339() -> str:
    """The current UTC time in the RFC 3339 form Kubernetes writes (whole seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merged_conditions(
    old: list[JsonDict], new: list[Condition], generation: int, now: str
) -> list[JsonDict]:
    previous = {c.get("type"): c for c in old if isinstance(c, dict)}
    merged = []
    for condition in new:
        entry = condition.as_dict(generation, now)
        before = previous.get(condition.type)
        if before is not None and before.get("status") == entry["status"]:
            entry["lastTransitionTime"] = before.get("lastTransitionTime", now)
        merged.append(entry)
    return merged


def publish(
    kube: KubePort,
    resource: JsonDict,
    *,
    state: str,
    message: str,
    conditions: list[Condition],
    extra: JsonDict | None = None,
    now: str | None = None,
) -> JsonDict:
    """Patch the status when it differs from the stored one; Event on a state change.

    Returns the status as it now stands. ``extra`` holds kind-specific fields (waitingFor,
    tangoHost, ...); a key set to None there is removed from the status.
    """
    now = now or now_rfc3339()
    old: JsonDict = dict(resource.get("status") or {})
    generation = int(resource["metadata"].get("generation", 1))
    new: JsonDict = {
        "state": state,
        "message": message,
        "observedGeneration": generation,
        "conditions": _merged_conditions(old.get("conditions") or [], conditions, generation, now),
    }
    for key, value in (extra or {}).items():
        if value is not None:
            new[key] = value
    patch: JsonDict = {key: value for key, value in new.items() if old.get(key) != value}
    for key in extra or {}:
        if (extra or {})[key] is None and key in old:
            patch[key] = None
    if not patch:
        return old
    kube.merge_patch(resource, {"status": patch}, subresource="status")
    if old.get("state") != state:
        kube.emit_event(
            resource,
            event_type="Warning" if state in WARNING_STATES else "Normal",
            reason=state,
            message=message or state,
        )
    stored = {**old, **new}
    return {key: value for key, value in stored.items() if value is not None}


def _seconds_since(resource: JsonDict, condition_type: str, status: str, now: datetime) -> float:
    """Seconds since ``condition_type`` last became ``status`` (0 if it is not so now)."""
    for condition in (resource.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type and condition.get("status") == status:
            since = condition.get("lastTransitionTime")
            if isinstance(since, str):
                try:
                    started = datetime.fromisoformat(since.replace("Z", "+00:00"))
                except ValueError:
                    return 0.0
                return max(0.0, (now - started).total_seconds())
    return 0.0


def waiting_delay(resource: JsonDict, settings: Settings, *, now: datetime | None = None) -> float:
    """How long to wait before checking an unmet dependency again.

    Grows with the time already spent waiting (a quarter of it), between the configured
    minimum and maximum, with ±20 % jitter so many waiters do not poll in lock-step. The
    clock is the Ready condition's lastTransitionTime, so no counter needs storing.
    """
    waited = _seconds_since(resource, "Ready", "False", now or datetime.now(UTC))
    base = min(max(waited / 4, settings.waiting_min_seconds), settings.waiting_max_seconds)
    return base * random.uniform(0.8, 1.2)
