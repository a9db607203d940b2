"""Fixtures of the fault-proxy tier: a ``FaultProxy`` per test on the session's control plane.

``fault_proxy`` starts a fresh proxy (no rules, no open watches) on the shared real server;
``namespace`` is a namespace of the test's own on it (deleted afterwards), and ``proxy_client``
an official client through the proxy with the admin token. Clients here do not retry: urllib3
would otherwise honour ``Retry-After`` and resend a throttled request three times.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack.controlplane import ControlPlane
from devstack.faultproxy import FaultProxy

_numbers = itertools.count()


def client_for(kubeconfig: Path) -> client.ApiClient:
    """An official client from ``kubeconfig`` that returns each answer as it is (no retries)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


@pytest.fixture
def fault_proxy(control_plane: ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    with FaultProxy.start(control_plane, tmp_path / "faultproxy") as proxy:
        yield proxy


@pytest.fixture
def proxy_client(fault_proxy: FaultProxy) -> Iterator[client.ApiClient]:
    api_client = client_for(fault_proxy.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace of this test's own on the shared control plane (made without the proxy)."""
    name = f"faultproxy-{next(_numbers)}"
    control_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
