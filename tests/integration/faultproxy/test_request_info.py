"""What a fault rule is matched against, decoded from a request's path as kubeemu's router does."""

from __future__ import annotations

import pytest

from devstack.faultproxy import RequestInfo, request_info

CORE = "/api/v1"
NS = f"{CORE}/namespaces/tango"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", f"{NS}/configmaps", {}, ("list", "configmaps", "", "tango")),
        ("GET", f"{NS}/configmaps", {"watch": "true"}, ("watch", "configmaps", "", "tango")),
        ("GET", f"{NS}/configmaps", {"watch": "1"}, ("watch", "configmaps", "", "tango")),
        ("GET", f"{NS}/configmaps", {"watch": "false"}, ("list", "configmaps", "", "tango")),
        ("GET", f"{CORE}/watch/namespaces/tango/pods", {}, ("watch", "pods", "", "tango")),
        ("GET", f"{NS}/configmaps/one", {}, ("get", "configmaps", "", "tango")),
        ("POST", f"{NS}/configmaps", {}, ("create", "configmaps", "", "tango")),
        ("PUT", f"{NS}/configmaps/one", {}, ("update", "configmaps", "", "tango")),
        ("PATCH", f"{NS}/pods/one/status", {}, ("patch", "pods", "", "tango")),
        ("DELETE", f"{NS}/configmaps/one", {}, ("delete", "configmaps", "", "tango")),
        ("DELETE", f"{NS}/configmaps", {}, ("deletecollection", "configmaps", "", "tango")),
        ("POST", f"{NS}/serviceaccounts/sa/token", {}, ("create", "serviceaccounts", "", "tango")),
        # a Namespace object is cluster-scoped, as in kubeemu
        ("GET", f"{CORE}/namespaces/tango", {}, ("get", "namespaces", "", "")),
        ("PUT", f"{CORE}/namespaces/tango/finalize", {}, ("update", "namespaces", "", "")),
        ("GET", f"{CORE}/namespaces", {}, ("list", "namespaces", "", "")),
        ("GET", f"{CORE}/nodes", {"watch": "t"}, ("watch", "nodes", "", "")),
        (
            "GET",
            "/apis/tango.tango-controls.org/v1/namespaces/tango/deviceservers/ds",
            {},
            ("get", "deviceservers", "tango.tango-controls.org", "tango"),
        ),
        (
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            {},
            ("list", "customresourcedefinitions", "apiextensions.k8s.io", ""),
        ),
    ],
)
def test_resource_requests(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str, str]
) -> None:
    assert request_info(method, path, query) == RequestInfo(*expected)


@pytest.mark.parametrize(
    "path",
    ["/", "/version", "/healthz", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1",
     "/openapi/v3", "/openapi/v3/api/v1", "/api/v1/watch"],
)  # fmt: skip
def test_other_paths_are_never_faulted(path: str) -> None:
    assert request_info("GET", path, {}) is None
