"""Wire basics and discovery details (kubeemu/README.md, the fidelity table).

What clients read before any object, generic error bodies, and which request encodings are
accepted.
"""

from __future__ import annotations

import urllib.request

import pytest

from kubeemu.testing import KubeEmu
from tests.kubeapi.raw import call, status_body

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
CM = "/api/v1/namespaces/default/configmaps"


def test_version_and_health_endpoints(kubeemu: KubeEmu) -> None:
    version = call(kubeemu, "GET", "/version").body
    assert (version["major"], version["minor"]) == ("1", "31")
    assert version["gitVersion"].startswith("v1.31.")
    assert version["platform"] == "linux/amd64"
    for path in ("/healthz", "/readyz", "/livez"):
        with urllib.request.urlopen(kubeemu.url + path, timeout=10) as response:
            assert response.read() == b"ok"


def test_aggregated_discovery_is_not_offered(kubeemu: KubeEmu) -> None:
    # kubectl asks for APIGroupDiscoveryList first; a plain JSON answer sends it down the legacy
    # path (GET /api/v1 and every /apis/<g>/<v>), which is what kubeemu serves
    for path, kind in (("/api", "APIVersions"), ("/apis", "APIGroupList")):
        reply = call(kubeemu, "GET", path, accept=AGGREGATED)
        assert reply.headers["Content-Type"] == "application/json"
        assert reply.body["kind"] == kind
    versions = call(kubeemu, "GET", "/api").body
    assert versions["serverAddressByClientCIDRs"][0]["clientCIDR"] == "0.0.0.0/0"
    group = call(kubeemu, "GET", "/apis/apps").body
    assert group == {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
    }


def test_resource_lists_describe_subresources(kubeemu: KubeEmu) -> None:
    resources = {r["name"]: r for r in call(kubeemu, "GET", "/apis/apps/v1").body["resources"]}
    statefulsets = resources["statefulsets"]
    assert statefulsets["kind"] == "StatefulSet"
    assert statefulsets["namespaced"] is True
    assert statefulsets["shortNames"] == ["sts"]
    assert sorted(statefulsets["verbs"]) == [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    scale = resources["statefulsets/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    core = {r["name"]: r for r in call(kubeemu, "GET", "/api/v1").body["resources"]}
    assert core["namespaces"]["namespaced"] is False
    assert "deletecollection" not in core["namespaces"]["verbs"]
    assert "configmaps/status" not in core, "no status subresource where the kind has none"


def test_openapi_v3_describes_namespaces_for_kubectl_validation(kubeemu: KubeEmu) -> None:
    root = call(kubeemu, "GET", "/openapi/v3").body
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    document = call(kubeemu, "GET", url).body
    operation = document["paths"]["/api/v1/namespaces/{name}"]["patch"]
    assert operation["x-kubernetes-group-version-kind"] == {
        "group": "",
        "version": "v1",
        "kind": "Namespace",
    }
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in operation["parameters"] if p["name"] == "fieldValidation"
    ).items()
    assert "io.k8s.api.core.v1.Namespace" in document["components"]["schemas"]
    assert call(kubeemu, "GET", "/openapi/v3/apis/nowhere/v1").status == 404


def test_generic_errors(kubeemu: KubeEmu) -> None:
    unknown = call(kubeemu, "GET", "/apis/apps/v1/namespaces/default/gizmos")
    assert unknown.body == status_body(
        404, "NotFound", "the server could not find the requested resource", {}
    )
    not_allowed = call(kubeemu, "POST", CM + "/named", {"metadata": {"name": "named"}})
    assert (not_allowed.status, not_allowed.body["reason"]) == (405, "MethodNotAllowed")
    # namespaces have no deletecollection verb
    assert call(kubeemu, "DELETE", "/api/v1/namespaces").status == 405


def test_request_body_encodings(kubeemu: KubeEmu) -> None:
    as_yaml = call(
        kubeemu,
        "POST",
        CM,
        raw=b"metadata:\n  name: from-yaml\ndata:\n  a: '1'\n",
        content_type="application/yaml",
    )
    assert (as_yaml.status, as_yaml.body["data"]) == (201, {"a": "1"})
    unknown = call(kubeemu, "POST", CM, raw=b"name=x", content_type="text/plain")
    assert unknown.body == status_body(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are shorter than 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def _protobuf(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return b"k8s\x00" + _field(1, type_meta) + _field(2, raw)


def test_protobuf_bodies_only_for_the_kinds_clients_send(kubeemu: KubeEmu) -> None:
    media = "application/vnd.kubernetes.protobuf"
    # ConfigMap{metadata: ObjectMeta{name: "pb"}, data: {"k": "v"}}
    config_map = _field(1, _field(1, b"pb")) + _field(2, _field(1, b"k") + _field(2, b"v"))
    created = call(
        kubeemu, "POST", CM, raw=_protobuf("v1", "ConfigMap", config_map), content_type=media
    )
    assert created.status == 201
    assert (created.body["metadata"]["name"], created.body["data"]) == ("pb", {"k": "v"})
    pod = _field(1, _field(1, b"pb"))
    refused = call(
        kubeemu,
        "POST",
        "/api/v1/namespaces/default/pods",
        raw=_protobuf("v1", "Pod", pod),
        content_type=media,
    )
    assert (refused.status, refused.body["reason"]) == (415, "UnsupportedMediaType")
    assert "only for Secret, ConfigMap and DeleteOptions" in refused.body["message"]
