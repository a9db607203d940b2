"""Dependency cycles across the DeviceServers of one TANGO host.

Called by the DeviceServer reconciler when a server would wait: its unmet ``dependsOn``
devices are looked up among the devices the other DeviceServers of the namespace configure
(their ``config``), edges are drawn from each server to the servers providing what it
depends on, and a cycle through the waiting server is returned. Such a server would wait
forever — each member waits for another to start — so every member reports Error naming
the same cycle. Only servers on the same TANGO host count: a device name means a device of
that host. Specs that do not parse are skipped; they are in Error on their own account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tango_operator import crd

JsonDict = dict[str, Any]


def _graph(
    resources: Iterable[JsonDict], *, namespace: str, tango_host: str
) -> dict[str, set[str]]:
    """Server name → names of the servers providing one of its dependsOn devices."""
    provides: dict[str, str] = {}
    wants: dict[str, set[str]] = {}
    for resource in resources:
        name = str(resource["metadata"]["name"])
        if resource["metadata"].get("deletionTimestamp"):
            continue
        try:
            spec = crd.parse_device_server(resource)
        except crd.SpecError:
            continue
        host = crd.tango_host_for(
            spec.databaseds, namespace=namespace, cluster_domain=spec.cluster_domain
        )
        if host != tango_host:
            continue
        for device in spec.devices:
            provides.setdefault(device, name)
        wants[name] = {
            dependency.device
            for dependency in spec.depends_on
            if dependency.device is not None
            and (dependency.tango_host is None or dependency.tango_host == tango_host)
        }
    return {
        name: {provides[device] for device in devices if device in provides} - {name}
        for name, devices in wants.items()
    }


def find_cycle(
    start: str, resources: Iterable[JsonDict], *, namespace: str, tango_host: str
) -> list[str] | None:
    """The shortest cycle of servers through ``start`` (``[start, …, start]``), if any."""
    graph = _graph(resources, namespace=namespace, tango_host=tango_host)
    return _shortest_cycle(start, graph)


def _shortest_cycle(start: str, graph: Mapping[str, set[str]]) -> list[str] | None:
    """Breadth-first from ``start`` until an edge leads back to it.

    Neighbours in name order, so every member of a cycle names it the same way round.
    """
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following: list[str] = []
        for node in frontier:
            for neighbour in sorted(graph.get(node, ())):
                if neighbour == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if neighbour not in seen:
                    seen.add(neighbour)
                    parents[neighbour] = node
                    following.append(neighbour)
        frontier = following
    return None


def describe(cycle: list[str]) -> str:
    """Write ``cycle`` (its first member repeated at the end) as ``a → b → a``."""
    return " → ".join(cycle)
