"""Dependency cycles among DeviceServers, from their specs (no cluster needed)."""

from __future__ import annotations

import json
from typing import Any

from workers.reconcile.cycles import _shortest_cycle, find_cycle

JsonDict = dict[str, Any]
HOST = "db.lab.svc.cluster.local:10000"


def _server(
    name: str, devices: tuple[str, ...], depends_on: list[str], databaseds: str = "db"
) -> JsonDict:
    config: JsonDict = {"servers": {"S": {name: {"S": {d: {} for d in devices}}}}}
    return {
        "metadata": {"name": name, "namespace": "lab"},
        "spec": {
            "dsname": "S",
            "args": name,
            "command": "/s",
            "image": "registry.example/s:1",
            "databaseds": databaseds,
            "config": json.dumps(config),
            "dependsOn": depends_on,
        },
    }


def test_shortest_cycle_through_the_start() -> None:
    graph = {"a": {"b", "x"}, "b": {"c"}, "c": {"a"}, "x": {"a"}}
    assert _shortest_cycle("a", graph) == ["a", "x", "a"]
    assert _shortest_cycle("b", graph) == ["b", "c", "a", "b"]
    assert _shortest_cycle("a", {"a": {"b"}, "b": {"c"}, "c": {"b"}}) is None


def test_two_servers_waiting_on_each_other() -> None:
    servers = [
        _server("a", ("lab/a/1",), ["lab/b/1"]),
        _server("b", ("lab/b/1",), ["LAB/A/1"]),  # device names are case-insensitive
        _server("c", ("lab/c/1",), ["lab/a/1"]),
    ]
    assert find_cycle("a", servers, namespace="lab", tango_host=HOST) == ["a", "b", "a"]
    assert find_cycle("b", servers, namespace="lab", tango_host=HOST) == ["b", "a", "b"]
    assert find_cycle("c", servers, namespace="lab", tango_host=HOST) is None


def test_servers_of_another_tango_host_or_in_deletion_do_not_count() -> None:
    other_host = _server("b", ("lab/b/1",), ["lab/a/1"], databaseds="other")
    leaving = _server("b", ("lab/b/1",), ["lab/a/1"])
    leaving["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    for b in (other_host, leaving):
        servers = [_server("a", ("lab/a/1",), ["lab/b/1"]), b]
        assert find_cycle("a", servers, namespace="lab", tango_host=HOST) is None


def test_unparseable_specs_and_host_port_dependencies_are_ignored() -> None:
    broken = _server("b", ("lab/b/1",), ["lab/a/1"])
    broken["spec"]["config"] = "{not json"
    servers = [_server("a", ("lab/a/1",), ["lab/b/1", "plc.example:502"]), broken]
    assert find_cycle("a", servers, namespace="lab", tango_host=HOST) is None
