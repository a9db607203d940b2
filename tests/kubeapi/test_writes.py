"""Write semantics, PATCH and server-side apply.

Replace preconditions, the status and scale subresources, dry runs, fieldValidation, the four patch
types and server-side apply errors.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu
from tests.conftest import Cli
from tests.kubeapi.crds import GROUP, PLURAL, VERSION, widget
from tests.kubeapi.raw import call, status_body

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
CM = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
CONFLICT = (
    'Operation cannot be fulfilled on configmaps "{}": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


def _config_map(name: str, data: dict[str, str] | None = None) -> JsonDict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}}


# --- C2: replace ---------------------------------------------------------------------------------
def test_replace_without_version_is_unconditional(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", CM, _config_map("put", {"a": "1"}))
    call(kubeemu, "PATCH", f"{CM}/put", {"data": {"a": "2"}}, content_type=MERGE)
    replaced = call(kubeemu, "PUT", f"{CM}/put", _config_map("put", {"a": "3"}))
    assert replaced.status == 200
    assert replaced.body["data"] == {"a": "3"}


def test_replace_of_missing_object_and_name_mismatch(kubeemu: KubeEmu) -> None:
    missing = call(kubeemu, "PUT", f"{CM}/absent", _config_map("absent"))
    assert missing.body == status_body(
        404,
        "NotFound",
        'configmaps "absent" not found',
        {"name": "absent", "kind": "configmaps"},
    )
    call(kubeemu, "POST", CM, _config_map("named"))
    renamed = call(kubeemu, "PUT", f"{CM}/named", _config_map("other"))
    assert renamed.body == status_body(
        400,
        "BadRequest",
        "the name of the object (other) does not match the name on the URL (named)",
    )


# --- C3: status subresource ----------------------------------------------------------------------
def test_status_subresource_exists_only_where_declared(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", CM, _config_map("nostatus"))
    reply = call(kubeemu, "PUT", f"{CM}/nostatus/status", _config_map("nostatus"))
    assert reply.body == status_body(
        404, "NotFound", "the server could not find the requested resource", {}
    )


def test_custom_resource_status_write_ignores_metadata_and_checks_version(
    api_client: client.ApiClient, widget_crd: JsonDict
) -> None:
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("s"))
    body = dict(created)
    body["metadata"] = {**created["metadata"], "labels": {"sneaky": "yes"}}
    body["status"] = {"phase": "Ready"}
    updated = custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "s", body
    )
    assert updated["status"] == {"phase": "Ready"}
    assert "labels" not in updated["metadata"], "a CR status write keeps the old metadata"
    # the resourceVersion precondition still applies on /status
    body["status"] = {"phase": "Stale"}
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "s", body)
    assert caught.value.status == 409


# --- C4: scale subresource -----------------------------------------------------------------------
def _statefulset(name: str, replicas: int) -> JsonDict:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "app:1"}]},
            },
        },
    }


def test_scale_subresource_with_the_typed_client_and_kubectl(
    api_client: client.ApiClient, kubectl: Cli
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("sc", replicas=0))
    scale = apps.read_namespaced_stateful_set_scale("sc", "default")
    assert api_client.sanitize_for_serialization(scale)["kind"] == "Scale"
    # ScaleSpec.replicas is omitempty: zero replicas read back as none
    assert (scale.spec.replicas, scale.status.selector) == (None, "app=sc")
    # the typed client's patch is a strategic merge patch: allowed on a built-in's /scale
    patched = apps.patch_namespaced_stateful_set_scale("sc", "default", {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    assert apps.read_namespaced_stateful_set("sc", "default").spec.replicas == 2
    scale.spec.replicas = 5  # scale still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_stateful_set_scale("sc", "default", scale)
    assert caught.value.status == 409
    kubectl.run("scale", "statefulset", "sc", "--replicas=1")
    assert apps.read_namespaced_stateful_set("sc", "default").spec.replicas == 1


# --- C5: dry run ---------------------------------------------------------------------------------
def test_dry_run_writes_persist_nothing(kubeemu: KubeEmu) -> None:
    created = call(kubeemu, "POST", CM, _config_map("dry", {"a": "1"})).body
    rv = created["metadata"]["resourceVersion"]
    mark = kubeemu.mark()
    patched = call(
        kubeemu, "PATCH", f"{CM}/dry?dryRun=All", {"data": {"a": "2"}}, content_type=MERGE
    )
    assert (patched.status, patched.body["data"]) == (200, {"a": "2"})
    replaced = call(kubeemu, "PUT", f"{CM}/dry?dryRun=All", _config_map("dry", {"a": "3"}))
    assert replaced.body["data"] == {"a": "3"}
    deleted = call(kubeemu, "DELETE", f"{CM}/dry?dryRun=All")
    assert deleted.status == 200
    live = call(kubeemu, "GET", f"{CM}/dry").body
    assert live["data"] == {"a": "1"}
    assert live["metadata"]["resourceVersion"] == rv
    assert kubeemu.mutations(mark) == []


# --- C6: fieldValidation -------------------------------------------------------------------------
def test_field_validation_warn_ignore_and_strict(kubeemu: KubeEmu) -> None:
    body = {**_config_map("fv"), "bogus": 1}
    warned = call(kubeemu, "POST", CM, body)  # Warn is the server default
    assert warned.status == 201
    assert warned.warnings() == ['299 - "unknown field \\"bogus\\""']
    assert "bogus" not in warned.body
    ignored = call(
        kubeemu, "POST", f"{CM}?fieldValidation=Ignore", {**body, "metadata": {"name": "fv2"}}
    )
    assert ignored.status == 201
    assert ignored.warnings() == []
    strict = call(
        kubeemu, "POST", f"{CM}?fieldValidation=Strict", {**body, "metadata": {"name": "fv3"}}
    )
    assert strict.body == status_body(
        400,
        "BadRequest",
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "bogus"',
    )
    # a patch that adds an unknown field fails as an invalid "patch" (422), not a decoding error
    strict_patch = call(
        kubeemu, "PATCH", f"{CM}/fv?fieldValidation=Strict", {"bogus": 1}, content_type=MERGE
    )
    assert strict_patch.status == 422
    assert strict_patch.body["reason"] == "Invalid"
    cause = strict_patch.body["details"]["causes"][0]
    assert cause["field"] == "patch"
    assert cause["message"].endswith(': strict decoding error: unknown field "bogus"')
    warned_patch = call(kubeemu, "PATCH", f"{CM}/fv", {"bogus": 1}, content_type=MERGE)
    assert warned_patch.warnings() == ['299 - "unknown field \\"bogus\\""']


def test_unknown_custom_resource_fields_are_pruned_with_a_warning(
    kubeemu: KubeEmu, widget_crd: JsonDict
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    reply = call(kubeemu, "POST", path, widget("pruned", size=1, extra="x"))
    assert reply.status == 201
    assert reply.warnings() == ['299 - "unknown field \\"spec.extra\\""']
    assert reply.body["spec"] == {"size": 1, "color": "red"}
    strict = call(kubeemu, "POST", f"{path}?fieldValidation=Strict", widget("s2", extra="x"))
    assert strict.body["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "spec.extra"'
    )


# --- PATCH ---------------------------------------------------------------------------------------
def test_merge_patch_resource_version_is_a_precondition(kubeemu: KubeEmu) -> None:
    created = call(kubeemu, "POST", CM, _config_map("mp", {"a": "1"})).body
    stale = created["metadata"]["resourceVersion"]
    call(kubeemu, "PATCH", f"{CM}/mp", {"data": {"a": "2"}}, content_type=MERGE)
    reply = call(
        kubeemu,
        "PATCH",
        f"{CM}/mp",
        {"metadata": {"resourceVersion": stale}, "data": {"a": "3"}},
        content_type=MERGE,
    )
    assert reply.body == status_body(
        409, "Conflict", CONFLICT.format("mp"), {"name": "mp", "kind": "configmaps"}
    )


def test_json_patch_errors(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", CM, _config_map("jp", {"a": "1"}))
    malformed = call(kubeemu, "PATCH", f"{CM}/jp", {"op": "add"}, content_type=JSON_PATCH)
    assert malformed.body == status_body(
        400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    )
    failed = call(
        kubeemu,
        "PATCH",
        f"{CM}/jp",
        [{"op": "test", "path": "/data/a", "value": "2"}],
        content_type=JSON_PATCH,
    )
    assert (failed.status, failed.body["reason"], failed.body["message"]) == (
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    )
    applied = call(
        kubeemu,
        "PATCH",
        f"{CM}/jp",
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
        ],
        content_type=JSON_PATCH,
    )
    assert applied.body["data"] == {"a": "1", "b": "2"}


def test_patch_errors_common_to_all_types(kubeemu: KubeEmu) -> None:
    missing = call(kubeemu, "PATCH", f"{CM}/absent", {"data": {}}, content_type=MERGE)
    assert (missing.status, missing.body["message"]) == (404, 'configmaps "absent" not found')
    call(kubeemu, "POST", CM, _config_map("pe"))
    forced = call(kubeemu, "PATCH", f"{CM}/pe?force=true", {"data": {}}, content_type=MERGE)
    assert forced.body == status_body(
        422,
        "Invalid",
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for '
        "non-apply patch",
        {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: may not be specified for non-apply patch",
                    "field": "force",
                }
            ],
        },
    )
    unknown = call(kubeemu, "PATCH", f"{CM}/pe", {"data": {}}, content_type="text/plain")
    assert unknown.body == status_body(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )


def test_strategic_merge_patch_directives(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    body = _statefulset("smp", replicas=0)
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
    apps.create_namespaced_stateful_set("default", body)
    reordered = apps.patch_namespaced_stateful_set(
        "smp",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
                        "containers": [{"name": "main", "image": "app:2"}],
                    }
                }
            }
        },
    )
    containers = reordered.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("side", "side:1"), ("main", "app:2")]
    patched = apps.patch_namespaced_stateful_set(
        "smp",
        "default",
        {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "$patch": "delete"}]}}},
        },
    )
    assert patched.metadata.finalizers == ["example.com/b"]
    assert [c.name for c in patched.spec.template.spec.containers] == ["side"]
    replaced = apps.patch_namespaced_stateful_set(
        "smp",
        "default",
        {"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "smp"}}}}},
    )
    assert replaced.spec.template.metadata.labels == {"app": "smp"}
    # leave nothing behind for the tests that share the namespace on the real server
    apps.patch_namespaced_stateful_set("smp", "default", {"metadata": {"finalizers": None}})
    apps.delete_namespaced_stateful_set("smp", "default")


# --- server-side apply ---------------------------------------------------------------------------
def _apply(kubeemu: KubeEmu, body: JsonDict, manager: str, name: str = "", **query: str) -> Any:
    params = "&".join(f"{k}={v}" for k, v in {"fieldManager": manager, **query}.items())
    target = name or body["metadata"]["name"]
    return call(kubeemu, "PATCH", f"{CM}/{target}?{params}", body, content_type=APPLY)


def test_apply_creates_and_checks_the_body_against_the_url(kubeemu: KubeEmu) -> None:
    created = _apply(kubeemu, _config_map("ssa", {"a": "1"}), "one")
    assert created.status == 201
    wrong_version = _apply(kubeemu, {**_config_map("ssa"), "apiVersion": "v2"}, "one")
    assert wrong_version.body == status_body(
        400, "BadRequest", "invalid object type: /v2, Kind=ConfigMap"
    )
    wrong_kind = _apply(kubeemu, {**_config_map("ssa"), "kind": "Secret"}, "one")
    assert wrong_kind.body["message"] == "invalid object type: /v1, Kind=Secret"
    wrong_name = _apply(kubeemu, _config_map("other"), "one", name="ssa")
    assert wrong_name.body == status_body(
        400, "BadRequest", "the name of the object (other) does not match the name on the URL (ssa)"
    )


def test_apply_shares_equal_values_and_removes_what_a_manager_drops(kubeemu: KubeEmu) -> None:
    _apply(kubeemu, _config_map("own", {"shared": "1", "mine": "x", "dropped": "y"}), "one")
    shared = _apply(kubeemu, _config_map("own", {"shared": "1"}), "two")
    assert shared.status == 200, "the same value is no conflict"
    owners = {e["manager"]: e["fieldsV1"] for e in shared.body["metadata"]["managedFields"]}
    assert owners == {
        "one": {"f:data": {"f:dropped": {}, "f:mine": {}, "f:shared": {}}},
        "two": {"f:data": {"f:shared": {}}},
    }
    # "one" stops applying "dropped" (removed: nobody else owns it) and "shared" (kept: "two" does)
    result = _apply(kubeemu, _config_map("own", {"mine": "x"}), "one")
    assert result.body["data"] == {"shared": "1", "mine": "x"}


def test_apply_with_an_undeclared_field_fails_to_convert(kubeemu: KubeEmu) -> None:
    body = {**_config_map("typo", {"a": "1"}), "dataa": {"b": "2"}}
    for validation in ("Strict", "Warn", "Ignore"):
        reply = _apply(kubeemu, body, "one", fieldValidation=validation)
        assert reply.body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "failed to create typed patch object (default/typo; /v1, Kind=ConfigMap): "
            ".dataa: field not declared in schema",
            "code": 500,
        }, validation
    assert call(kubeemu, "GET", f"{CM}/typo").status == 404


def test_apply_to_a_custom_resource_checks_its_schema(
    kubeemu: KubeEmu, widget_crd: JsonDict
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/w?fieldManager=op"
    body = widget("w", size=1, shape="round")
    reply = call(kubeemu, "PATCH", path, body, content_type=APPLY)
    assert (reply.status, reply.body["message"]) == (
        500,
        f"failed to create typed patch object (default/w; {GROUP}/{VERSION}, Kind=Widget): "
        ".spec.shape: field not declared in schema",
    )
    body["spec"].pop("shape")
    created = call(kubeemu, "PATCH", path, body, content_type=APPLY)
    assert created.status == 201
    assert json.dumps(created.body["spec"], sort_keys=True) == '{"color": "red", "size": 1}'


def test_apply_merges_list_map_items_of_different_managers(kubeemu: KubeEmu) -> None:
    path = "/apis/apps/v1/namespaces/default/statefulsets/lm"

    def config(*containers: str) -> JsonDict:
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "lm"},
            "spec": {
                "replicas": 0,
                "serviceName": "lm",
                "selector": {"matchLabels": {"app": "lm"}},
                "template": {
                    "metadata": {"labels": {"app": "lm"}},
                    "spec": {"containers": [{"name": c, "image": f"{c}:1"} for c in containers]},
                },
            },
        }

    assert (
        call(kubeemu, "PATCH", f"{path}?fieldManager=one", config("a"), content_type=APPLY).status
        == 201
    )
    # a second manager adds its own container: containers merge by name, no conflict on .spec
    body = config("b")
    del body["spec"]["selector"], body["spec"]["serviceName"], body["spec"]["replicas"]
    body["spec"]["template"]["metadata"] = {"labels": {"app": "lm"}}
    both = call(kubeemu, "PATCH", f"{path}?fieldManager=two", body, content_type=APPLY)
    assert both.status == 200, both.body
    containers = both.body["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    # the first manager drops nothing it does not own
    again = call(kubeemu, "PATCH", f"{path}?fieldManager=one", config("a"), content_type=APPLY)
    assert [c["name"] for c in again.body["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
