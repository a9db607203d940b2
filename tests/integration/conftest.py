"""CRD fixtures for the integration tests: the chart's CRDs, installed the way a user does it.

The CRDs come from ``helm/tango-operator/crds/`` (their single source); ``crds_installed``
applies them to the test's kubeemu with the real kubectl and waits until they are Established,
``crd_api_client`` adds an official Python client on the same emulator.
``crd_api_client_shared`` is one emulator with the CRDs for a whole session, for tests that
only create uniquely named objects or whose writes the API rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from devstack.stack import CRD_DIR, install_crds
from kubeemu.testing import KubeEmu
from tests.conftest import Cli, kubectl_binary


def crd_names() -> list[str]:
    """``metadata.name`` of every CRD file in the chart, sorted."""
    return sorted(
        yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_DIR.glob("*.yaml")
    )


@pytest.fixture
def crds_installed(kubectl: Cli) -> list[str]:
    """Apply the chart's CRDs with kubectl; return their names once all are Established."""
    kubectl.run("apply", "-f", str(CRD_DIR))
    names = crd_names()
    kubectl.run(
        "wait",
        "--for=condition=Established",
        *(f"customresourcedefinition/{name}" for name in names),
        "--timeout=30s",
    )
    return names


@pytest.fixture
def crd_api_client(kubeemu: KubeEmu, crds_installed: list[str]) -> Iterator[client.ApiClient]:
    """A Python client on the emulator where the CRDs are installed."""
    api_client = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def kubectl_shared(
    kubeemu_shared: KubeEmu, crd_api_client_shared: client.ApiClient, tmp_path: Path
) -> Cli:
    """The real kubectl on the session's shared emulator with the CRDs, for tests that only read."""
    return Cli(kubectl_binary(), kubeemu_shared.kubeconfig, tmp_path)


@pytest.fixture(scope="session")
def crd_api_client_shared(kubeemu_shared: KubeEmu) -> Iterator[client.ApiClient]:
    """A Python client on the session's shared emulator, where the CRDs are Established."""
    api_client = config.new_client_from_config(config_file=str(kubeemu_shared.kubeconfig))
    try:
        install_crds(api_client)
        yield api_client
    finally:
        api_client.close()
