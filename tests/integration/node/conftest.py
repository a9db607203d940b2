"""Fixtures of the node tier: this machine as a Node of the session's real control plane.

``local_node`` is a ``devstack.runner.node.LocalNode`` (the Node registered, its Lease renewed
every second, the kubelet running the pods bound to it, the HTTPS log endpoint) for one test
module; at the end it is stopped and, unlike a kubelet, the fixture also deletes the Node and
its Lease, so no Ready Node without a kubelet stays behind for the other tests of the session.
``namespace`` is a namespace of the test's own, deleted afterwards while the node still runs
(the kubelet ends the pods' processes and deletes the pods, which lets the namespace go).
``node_kubectl`` is the pinned kubectl on the control plane.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack.controlplane import ControlPlane
from devstack.runner import plan
from devstack.runner.node import LEASE_NAMESPACE, LocalNode
from devstack.runner.process import RestartPolicy
from tests.conftest import TOOLS, Cli
from tests.support.real_parts import unavailable

_numbers = itertools.count()
NODE = "local-node"


@pytest.fixture(scope="module")
def node_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An official client on the control plane, as its admin."""
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture(scope="module")
def local_node(
    node_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalNode]:
    node = LocalNode(
        node_api,
        plan.Settings(workdir=tmp_path_factory.mktemp("local-node")),
        name=NODE,
        restart=RestartPolicy(base=0.2, cap=1.0),
        probe_period_cap=0.2,
        lease_period=1.0,
        status_period=2.0,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()
        core = client.CoreV1Api(node_api)
        leases = client.CoordinationV1Api(node_api)
        for kind in ("node", "lease"):
            try:
                if kind == "node":
                    core.delete_node(NODE)
                else:
                    leases.delete_namespaced_lease(NODE, LEASE_NAMESPACE)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, node_api: client.ApiClient, local_node: LocalNode
) -> Iterator[str]:
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))
    name = f"node-{next(_numbers)}-{words}"[:60].strip("-")
    core = client.CoreV1Api(node_api)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                core.read_namespace(name)
            except client.ApiException as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(0.5)


@pytest.fixture
def node_kubectl(control_plane: ControlPlane, tmp_path: Path) -> Cli:
    binary = TOOLS / "kubectl"
    if not binary.exists():
        unavailable(f"{binary} is missing: run `make tools`")
    return Cli(str(binary), control_plane.kubeconfig, tmp_path)
