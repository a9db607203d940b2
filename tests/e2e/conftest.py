"""One local stack for the end-to-end tests: every part real.

kubeemu (StatefulSets in manual mode), redis-server, the watcher, two supervised worker
processes with the PyTango side (``workers.tango``), and the local kubelet, which starts
PyTango's DataBaseds for each DatabaseDS and the device servers from their ``script``.
Each test works in its own namespace with its own DatabaseDS (so its own TANGO DB); the
namespaces are declared here because the stack maps each DataBaseds to a local port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tango
from kubernetes import client

from devstack.stack import LocalStack, StackOptions, cluster_tango_host
from tango_operator import crd

JsonDict = dict[str, Any]
NAMESPACES = ("chain", "outage", "config", "claims", "cleanup")
DATABASEDS = "tango-db"
SKA_NAMESPACE, SKA_DATABASEDS = "ska", "databaseds-tango-base"

SERVER_SCRIPT = '''\
from tango import AttrWriteType
from tango.server import Device, attribute, device_property, run


class Probe(Device):
    """Serves its ``label`` property, so a test sees what the DB gave it at start."""

    label = device_property(dtype=str, default_value="unset")

    @attribute(dtype=str)
    def label_value(self):
        return self.label


if __name__ == "__main__":
    run((Probe,))
'''


@dataclass
class E2E:
    stack: LocalStack
    api_client: client.ApiClient

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    def tango_db(self, namespace: str, databaseds: str = DATABASEDS) -> tango.Database:
        """A client of the namespace's TANGO DB, once its DatabaseDS is Running."""
        self.wait(
            lambda: (
                self.status(namespace, databaseds, crd.Kind.DATABASE_DS).get("state") == "Running"
            ),
            what=f"DatabaseDS {namespace}/{databaseds} Running",
        )
        local = self.stack.host_map[cluster_tango_host(databaseds, namespace)]
        host, _, port = local.rpartition(":")
        return tango.Database(host, int(port))

    def create(self, namespace: str, resource: JsonDict) -> None:
        kind = crd.Kind(resource["kind"])
        self.custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, kind.plural, resource
        )

    def patch(self, namespace: str, name: str, spec: JsonDict) -> None:
        self.custom.patch_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, "deviceservers", name, {"spec": spec}
        )

    def status(
        self, namespace: str, name: str, kind: crd.Kind = crd.Kind.DEVICE_SERVER
    ) -> JsonDict:
        found: JsonDict = self.custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, namespace, kind.plural, name
        )
        return found.get("status") or {}

    def state(self, namespace: str, name: str) -> str | None:
        state: str | None = self.status(namespace, name).get("state")
        return state

    def wait(self, predicate: Callable[[], bool], *, timeout: float = 90, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.stack.check()
            assert not dead, f"stack processes died: {dead}; logs in {self.stack.logs}"
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_states(self, namespace: str, wanted: dict[str, str], timeout: float = 90) -> None:
        def reached() -> bool:
            return all(self.state(namespace, n) == s for n, s in wanted.items())

        try:
            self.wait(reached, timeout=timeout, what=f"{namespace}: {wanted}")
        except AssertionError as exc:
            states = {n: self.status(namespace, n) for n in wanted}
            raise AssertionError(f"{exc}; now: {states}; logs in {self.stack.logs}") from None


def database_ds() -> JsonDict:
    return {"apiVersion": crd.API_VERSION, "kind": "DatabaseDS", "metadata": {"name": DATABASEDS}}


def device_server(
    name: str,
    devices: dict[str, JsonDict],
    *,
    depends_on: list[str] | None = None,
    classes: JsonDict | None = None,
) -> JsonDict:
    """A DeviceServer running ``SERVER_SCRIPT`` (server ``Probe/<name>``, class ``Probe``)."""
    config: JsonDict = {"servers": {"Probe": {name: {"Probe": devices}}}}
    if classes:
        config["classes"] = classes
    spec: JsonDict = {
        "dsname": "Probe",
        "args": name,
        "image": "registry.example/probe:1",
        "databaseds": DATABASEDS,
        "script": SERVER_SCRIPT,
        "config": json.dumps(config),
    }
    if depends_on:
        spec["dependsOn"] = depends_on
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    workdir: Path = tmp_path_factory.mktemp("e2e-stack")
    stack = LocalStack(
        StackOptions(
            workdir=workdir,
            databaseds=(
                *((namespace, DATABASEDS) for namespace in NAMESPACES),
                (SKA_NAMESPACE, SKA_DATABASEDS),
            ),
            workers=2,
            flower=False,
        )
    )
    stack.start()
    try:
        assert stack.api_client is not None
        core = client.CoreV1Api(stack.api_client)
        for namespace in (*NAMESPACES, SKA_NAMESPACE):
            core.create_namespace({"metadata": {"name": namespace}})
        yield E2E(stack=stack, api_client=stack.api_client)
    finally:
        stack.stop()
