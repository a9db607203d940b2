"""Fixtures of the parity tier: one scenario, run on kubeemu and on the real kube-apiserver.

``servers`` hands a test a ``Wire`` to a fresh kubeemu and one to the session's control plane,
and a namespace of the test's own made on both (the real server is shared by the session, so
names never collide). The tier needs both servers: with ``--kube-api`` naming one, it skips.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.controlplane import ControlPlane
from kubeemu.testing import KubeEmu
from tests.conftest import selected_kube_apis
from tests.parity.wire import Wire

_numbers = itertools.count()


@dataclass
class Servers:
    """The two servers of one parity test and the namespace made on both."""

    kubeemu: Wire
    real: Wire
    namespace: str

    def both(self) -> tuple[tuple[str, Wire], tuple[str, Wire]]:
        return ("kubeemu", self.kubeemu), ("kube-apiserver", self.real)


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, kubeemu: KubeEmu, control_plane: ControlPlane
) -> Iterator[Servers]:
    if len(selected_kube_apis(request.config)) < 2:
        pytest.skip("the parity tier compares two servers: run with --kube-api=both")
    words = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))
    namespace = f"parity-{next(_numbers)}-{words}"[:60].strip("-")
    pair = Servers(Wire(kubeemu.kubeconfig), Wire(control_plane.kubeconfig), namespace)
    for _, wire in pair.both():
        made = wire.call(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": namespace}},
        )  # fmt: skip
        assert made.status == 201, made
    try:
        yield pair
    finally:
        pair.real.call("DELETE", f"/api/v1/namespaces/{namespace}")
        pair.kubeemu.close()
        pair.real.close()
