"""Fixtures of the Kubernetes API tier: the Widget CRD (``api_client`` is tests/conftest.py's)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.kubeapi.crds import GROUP, PLURAL, VERSION, WIDGET_CRD


@pytest.fixture
def widget_crd(api_client: client.ApiClient) -> dict[str, object]:
    """Install the Widget CRD and return it as stored."""
    """Install the Widget CRD (kept when a shared server has it already); wait until served."""
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        created = extensions.create_custom_resource_definition(body=WIDGET_CRD)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        created = extensions.read_custom_resource_definition(WIDGET_CRD["metadata"]["name"])
    custom = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 30
    while True:  # a real server answers 429 until the new resource's storage is ready
        try:
            custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
            break
        except client.ApiException as exc:
            if exc.status not in (404, 429) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return api_client.sanitize_for_serialization(created)  # type: ignore[no-any-return]
