"""Fixtures of the reconcile tests: kubeemu with the operator's CRDs, and the Operator driver."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support.operator import Operator


@pytest.fixture
def operator(kube_client: client.ApiClient) -> Operator:
    return Operator(kube_client)
