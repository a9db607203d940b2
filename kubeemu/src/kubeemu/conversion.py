"""Conversion between a served version and the storage form of resources that share storage.

Data comes from the Api layer (an object as a client sent it, or as it is stored) and goes
back to it. Every served version of a CRD (conversion strategy ``None``, the only one the
emulator has) is stored at the CRD's storage version and read back with its own apiVersion.
Upstream stores events.k8s.io/v1 Events and core/v1 Events in one place (the internal Event
type), so an Event written through one API is listed through the other; the field renames
below follow upstream's ``pkg/apis/events/v1`` conversion functions.
"""

from __future__ import annotations

from typing import Any

from kubeemu.registry import ResourceType

JsonDict = dict[str, Any]

# events.k8s.io/v1 name -> core/v1 (storage) name; the rest is spelled the same in both
_EVENTS_V1_TO_CORE = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_CORE_TO_EVENTS_V1 = {core: served for served, core in _EVENTS_V1_TO_CORE.items()}


def _renamed(obj: JsonDict, names: dict[str, str]) -> JsonDict:
    return {names.get(key, key): value for key, value in obj.items()}


def to_storage(rtype: ResourceType, obj: JsonDict) -> JsonDict:
    """The object as stored, from its served form at ``rtype``'s version.

    A custom resource is stored at its CRD's storage version: with conversion ``None`` only
    ``apiVersion`` differs, set here on ``obj`` itself.
    """
    if (rtype.group, rtype.resource) == ("events.k8s.io", "events"):
        stored = _renamed(obj, _EVENTS_V1_TO_CORE)
        stored["apiVersion"], stored["kind"] = "v1", "Event"
        return stored
    if rtype.storage_version and rtype.storage_version != rtype.version:
        obj["apiVersion"] = f"{rtype.group}/{rtype.storage_version}"
    return obj


def from_storage(rtype: ResourceType, obj: JsonDict) -> JsonDict:
    """The stored object in the served form of ``rtype``'s version (a fresh dict)."""
    if (rtype.group, rtype.resource) == ("events.k8s.io", "events"):
        return _renamed(obj, _CORE_TO_EVENTS_V1)
    return dict(obj)
