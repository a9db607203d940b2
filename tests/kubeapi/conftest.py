"""Fixtures of the Kubernetes API tier: the official Python clients, from kubeemu's kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from kubeemu.testing import KubeEmu
from tests.kubeapi.crds import WIDGET_CRD


@pytest.fixture
def api_client(kubeemu: KubeEmu) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def widget_crd(api_client: client.ApiClient) -> dict[str, object]:
    """Install the Widget CRD and return it as stored."""
    extensions = client.ApiextensionsV1Api(api_client)
    created = extensions.create_custom_resource_definition(body=WIDGET_CRD)
    return api_client.sanitize_for_serialization(created)  # type: ignore[no-any-return]
