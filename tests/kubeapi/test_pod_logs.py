"""``kubectl logs`` and ``read_namespaced_pod_log``: the API server asks the kubelet of the Node.

The same assertions on kubeemu and on the real kube-apiserver (``kube_api``): the kubelet is
``tests.support.fake_kubelet`` (the local kubelet's log endpoint, with a fixed output), its
Node advertises it, and the pods are bound to that Node (or to none). The exact Status bodies
of every error are compared between the two servers by ``tests/parity`` (``pod_logs``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conftest import Cli
from tests.support import fake_kubelet

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

NODE = "pod-logs-node"
LINES = [f"{word} line {number}" for number, word in enumerate(["first", *["more"] * 6, "last"])]
OUTPUT = "".join(f"{line}\n" for line in LINES)


@pytest.fixture
def bound_pods(api_client: client.ApiClient) -> Iterator[None]:
    """Pod ``app`` on a Node whose kubelet has its output; pod ``pending`` on no Node."""
    with fake_kubelet.fake_kubelet({"app": OUTPUT.encode()}) as kubelet:
        fake_kubelet.node(api_client, NODE, fake_kubelet.LOOPBACK, kubelet.port)
        try:
            fake_kubelet.pod(api_client, "default", "app", NODE)
            fake_kubelet.pod(api_client, "default", "pending", None)
            yield
        finally:
            fake_kubelet.remove(api_client, "default", [NODE])


@pytest.mark.usefixtures("bound_pods")
def test_kubectl_logs_prints_what_the_kubelet_has(kubectl: Cli) -> None:
    assert kubectl.run("logs", "app").stdout == OUTPUT
    assert kubectl.run("logs", "app", "--tail=2").stdout == "".join(f"{x}\n" for x in LINES[-2:])
    assert kubectl.run("logs", "app", "--limit-bytes=12").stdout == OUTPUT[:12]
    assert kubectl.run("logs", "app", "--tail=1", "--limit-bytes=4").stdout == "last"
    assert kubectl.run("logs", "app", "-c", "main", "--follow").stdout == OUTPUT
    assert kubectl.run("logs", "pod/pending").stdout == "", "not scheduled: nothing to show"
    missing = kubectl.run("logs", "missing", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        'error: error from server (NotFound): pods "missing" not found in namespace "default"\n',
    )
    wrong = kubectl.run("logs", "app", "-c", "other", check=False)
    assert (wrong.returncode, wrong.stderr) == (
        1,
        "error: container other is not valid for pod app\n",
    )


def _log(core: client.CoreV1Api, name: str, **options: object) -> str:
    """``read_namespaced_pod_log``'s body as text.

    Read raw: the client (36) decodes only JSON bodies and answers ``str()`` of the bytes.
    """
    response = core.read_namespaced_pod_log(name, "default", _preload_content=False, **options)
    return str(response.data.decode())


@pytest.mark.usefixtures("bound_pods")
def test_read_namespaced_pod_log(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    assert _log(core, "app") == OUTPUT
    assert _log(core, "app", tail_lines=3) == "".join(f"{line}\n" for line in LINES[-3:])
    assert _log(core, "app", limit_bytes=5) == "first"
    assert _log(core, "app", container="main", tail_lines=0) == ""
    assert _log(core, "pending") == "", "not scheduled: 204, no body"
    with pytest.raises(client.ApiException) as missing:
        _log(core, "missing")
    assert (missing.value.status, missing.value.reason) == (404, "Not Found")
    assert 'pods \\"missing\\" not found' in missing.value.body
    with pytest.raises(client.ApiException) as invalid:
        _log(core, "app", limit_bytes=0)
    assert invalid.value.status == 422
    assert "limitBytes: Invalid value: 0: must be greater than 0" in invalid.value.body
