"""Small custom resources for the tests and benchmarks that are not about TANGO.

Those tests are about the queue, the watcher or the API: a valid DeviceServer with nothing to wait
for (against the stand-in TANGO side it goes straight to Running), and state counts.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tango_operator import crd

JsonDict = dict[str, Any]


def device_server(name: str, **spec: Any) -> JsonDict:
    """A DeviceServer ``name`` with a minimal valid spec; ``spec`` adds or replaces keys."""
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name},
        "spec": {
            "dsname": "Motor",
            "args": name,
            "command": "/usr/bin/Motor",
            "databaseds": "db.example",
            "image": "motor:1",
            **spec,
        },
    }


def traced_device_server(name: str, **spec: Any) -> JsonDict:
    """``device_server`` with a TANGO host of its own, ``db-<name>.example``.

    The tracing stand-in (``tests.support.standin_tango.TracingStandIn``) records each reconcile
    under its host, so a test tells the reconciles of its CRs apart.
    """
    return device_server(name, **{"databaseds": f"db-{name}.example", **spec})


def create_device_server(
    api_client: client.ApiClient, name: str, namespace: str = "default", **spec: Any
) -> JsonDict:
    created: JsonDict = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers", device_server(name, **spec)
    )
    return created


def running(api_client: client.ApiClient, namespace: str) -> int:
    """How many DeviceServers of ``namespace`` report state Running."""
    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers"
    )["items"]
    return sum((item.get("status") or {}).get("state") == "Running" for item in items)
