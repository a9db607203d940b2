"""One local stack per Kubernetes API for the end-to-end tests: every part real.

An API server (kubeemu with StatefulSets in manual mode, or a real control plane of the
stack's own: ``devstack.stack_api``), redis-server, the watcher, two supervised worker
processes with the PyTango side (``workers.tango``), and the local kubelet (on the real
control plane, this machine as its Node), which starts PyTango's DataBaseds for each
DatabaseDS and the device servers from their ``script``. Each test works in its own namespace
with its own DatabaseDS (so its own TANGO DB); the namespaces are declared here because the
stack maps each DataBaseds to a local port.

Every test that uses the stack (or asks for ``stack_api``) runs once per server ``--kube-api``
selects (``tests/conftest.py``). ``stack_api`` is a session-scoped parameter, so pytest groups
the tests by server and keeps one stack at a time: two stack starts per session, not one per
test. Without the control plane's binaries the real-server runs skip (fail under
``CI=true``).
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

from devstack.controlplane import COMPONENTS, ControlPlaneError, binary
from devstack.stack import LocalStack, StackOptions, cluster_tango_host
from devstack.stack_api import ApiChoice
from tango_operator import crd
from tests.conftest import selected_kube_apis
from tests.support.probe_server import SERVER_SCRIPT
from tests.support.real_parts import unavailable

JsonDict = dict[str, Any]
NAMESPACES = (
    *("chain", "outage", "config", "claims", "cleanup", "deletion", "crash", "health", "reload"),
)
DATABASEDS = "tango-db"
SKA_NAMESPACE, SKA_DATABASEDS = "ska", "databaseds-tango-base"


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

    def gone(self, namespace: str, name: str) -> bool:
        """Whether the DeviceServer ``name`` no longer exists (its finalizer has run)."""
        try:
            self.custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, "deviceservers", name
            )
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    def warnings(self, namespace: str) -> set[tuple[str, str]]:
        """(involved object's name, reason) of every Warning Event in ``namespace``."""
        return {
            (event.involved_object.name, event.reason)
            for event in client.CoreV1Api(self.api_client).list_namespaced_event(namespace).items
            if event.type == "Warning"
        }

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses ``stack_api`` (the ``e2e`` stack does) runs once per selected server."""
    if "stack_api" in metafunc.fixturenames:
        metafunc.parametrize("stack_api", selected_kube_apis(metafunc.config), scope="session")


def require(api: ApiChoice) -> None:
    """Skip (fail under ``CI=true``) when ``api`` is ``real`` and its binaries are missing."""
    if api != "real":
        return
    try:
        for name in COMPONENTS:
            binary(name)
    except ControlPlaneError as error:
        unavailable(str(error))


@pytest.fixture(scope="session")
def e2e(stack_api: ApiChoice, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """The stack on ``stack_api``, with the tests' namespaces made."""
    require(stack_api)
    workdir: Path = tmp_path_factory.mktemp(f"e2e-stack-{stack_api}")
    stack = LocalStack(
        StackOptions(
            workdir=workdir,
            api=stack_api,
            databaseds=(
                *((namespace, DATABASEDS) for namespace in NAMESPACES),
                (SKA_NAMESPACE, SKA_DATABASEDS),
            ),
            workers=2,
            flower=False,
        )
    )
    stack.start()  # a control plane that does not start (binaries present) is an error
    try:
        assert stack.api_client is not None
        core = client.CoreV1Api(stack.api_client)
        for namespace in (*NAMESPACES, SKA_NAMESPACE):
            core.create_namespace({"metadata": {"name": namespace}})
        yield E2E(stack=stack, api_client=stack.api_client)
    finally:
        stack.stop()
