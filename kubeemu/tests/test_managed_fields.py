"""Tests of kubeemu.managed_fields against Kubernetes' documented server-side-apply behaviour.

Expected ``fieldsV1`` documents are written by hand in the format a 1.31 apiserver returns (``"."``
under list items and under maps an Update created, ``k:`` keys sorted by field name, key fields
defaulted: ``protocol`` is ``TCP``), and the 409 body is the one recorded from a real apiserver.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubeemu.errors import ApiError
from kubeemu.fieldsets import fields_of, format_path, from_fields_v1, to_fields_v1
from kubeemu.managed_fields import (
    ManagerKey,
    conflict_error,
    managers_of,
    record_update,
    server_side_apply,
)
from kubeemu.schema import SchemaNode, builtin_schema, crd_schema

JsonDict = dict[str, Any]
T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:05:00Z"
T2 = "2024-05-01T10:10:00Z"


@pytest.fixture(scope="module")
def sts_schema() -> SchemaNode:
    return builtin_schema("apps", "v1", "StatefulSet")


@pytest.fixture(scope="module")
def svc_schema() -> SchemaNode:
    return builtin_schema("", "v1", "Service")


@pytest.fixture(scope="module")
def cm_schema() -> SchemaNode:
    return builtin_schema("", "v1", "ConfigMap")


@pytest.fixture(scope="module")
def widget_schema() -> SchemaNode:
    return crd_schema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "zones": {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-list-type": "set",
                        },
                        "devices": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "path": {"type": "string"},
                                    "mode": {"type": "string"},
                                },
                            },
                        },
                        "options": {
                            "type": "object",
                            "x-kubernetes-map-type": "atomic",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
                "status": {
                    "type": "object",
                    "properties": {"phase": {"type": "string"}},
                },
            },
        }
    )


def statefulset(image: str = "registry/tango:9.5", replicas: int = 1) -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "tango", "labels": {"app": "db"}},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {
                    "containers": [
                        {
                            "name": "databaseds",
                            "image": image,
                            "ports": [{"containerPort": 10000, "name": "tango"}],
                            "env": [{"name": "TANGO_HOST", "value": "db:10000"}],
                        }
                    ]
                },
            },
        },
    }


def service(selector: JsonDict | None = None) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "tango"},
        "spec": {
            "selector": selector if selector is not None else {"app": "db"},
            "ports": [{"port": 10000, "targetPort": 10000}],
        },
    }


def configmap(data: JsonDict, labels: JsonDict | None = None) -> JsonDict:
    metadata: JsonDict = {"name": "cfg", "namespace": "tango"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def widget(spec: JsonDict) -> JsonDict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "tango"},
        "spec": spec,
    }


def entries(obj: JsonDict) -> list[JsonDict]:
    result: list[JsonDict] = obj["metadata"].get("managedFields", [])
    return result


def entry(obj: JsonDict, manager: str, operation: str) -> JsonDict:
    found = [e for e in entries(obj) if e["manager"] == manager and e["operation"] == operation]
    assert len(found) == 1, entries(obj)
    return found[0]


def f(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple(("f", name) for name in names)


# --- the real fieldsV1 format ---------------------------------------------------------------------

STATEFULSET_APPLY_FIELDS_V1: JsonDict = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:serviceName": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {
                    'k:{"name":"databaseds"}': {
                        ".": {},
                        "f:env": {
                            'k:{"name":"TANGO_HOST"}': {".": {}, "f:name": {}, "f:value": {}}
                        },
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {
                            'k:{"containerPort":10000,"protocol":"TCP"}': {
                                ".": {},
                                "f:containerPort": {},
                                "f:name": {},
                            }
                        },
                    }
                }
            },
        },
    },
}


def test_apply_fields_v1_of_a_statefulset_matches_the_apiserver(sts_schema: SchemaNode) -> None:
    result = server_side_apply(
        None,
        statefulset(),
        manager="kubectl",
        force=False,
        schema=sts_schema,
        api_version="apps/v1",
        now=T0,
    )
    assert entries(result) == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": STATEFULSET_APPLY_FIELDS_V1,
        }
    ]
    # the apiserver serializes in SMD order: "." first, then f: by name, then k:
    encoded = json.dumps(entries(result)[0]["fieldsV1"], separators=(",", ":"))
    assert encoded == json.dumps(STATEFULSET_APPLY_FIELDS_V1, separators=(",", ":"))
    # everything else of the object is the applied configuration
    without = copy.deepcopy(result)
    del without["metadata"]["managedFields"]
    assert without == statefulset()


def test_update_on_create_marks_maps_and_lists_it_created(sts_schema: SchemaNode) -> None:
    created = record_update(
        None,
        statefulset(),
        manager="OpenAPI-Generator",
        schema=sts_schema,
        api_version="apps/v1",
        now=T0,
    )
    assert entries(created) == [
        {
            "manager": "OpenAPI-Generator",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:serviceName": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"databaseds"}': {
                                    ".": {},
                                    "f:env": {
                                        ".": {},
                                        'k:{"name":"TANGO_HOST"}': {
                                            ".": {},
                                            "f:name": {},
                                            "f:value": {},
                                        },
                                    },
                                    "f:image": {},
                                    "f:name": {},
                                    "f:ports": {
                                        ".": {},
                                        'k:{"containerPort":10000,"protocol":"TCP"}': {
                                            ".": {},
                                            "f:containerPort": {},
                                            "f:name": {},
                                        },
                                    },
                                }
                            }
                        },
                    },
                },
            },
        }
    ]


def test_update_on_create_of_configmap_and_custom_resource(
    cm_schema: SchemaNode, widget_schema: SchemaNode
) -> None:
    cm = record_update(
        None,
        configmap({"a": "1"}, labels={"app": "x"}),
        manager="kubectl-create",
        schema=cm_schema,
        api_version="v1",
        now=T0,
    )
    assert entry(cm, "kubectl-create", "Update")["fieldsV1"] == {
        "f:data": {".": {}, "f:a": {}},
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    }
    # a custom resource starts from an empty object: spec itself was added
    cr = record_update(
        None,
        widget({"size": 3}),
        manager="kubectl-create",
        schema=widget_schema,
        api_version="example.com/v1",
        now=T0,
    )
    assert entry(cr, "kubectl-create", "Update")["fieldsV1"] == {"f:spec": {".": {}, "f:size": {}}}


def test_fields_of_strips_untracked_metadata_and_keeps_generate_name(
    cm_schema: SchemaNode,
) -> None:
    obj = configmap({"a": "1"})
    obj["metadata"].update(
        {
            "uid": "u",
            "resourceVersion": "5",
            "creationTimestamp": T0,
            "generateName": "cfg-",
            "managedFields": [{"manager": "x"}],
        }
    )
    assert fields_of(obj, cm_schema) == {f("data", "a"), f("metadata", "generateName")}


def test_fields_of_lists_by_type(widget_schema: SchemaNode) -> None:
    obj = widget(
        {
            "tags": ["a", "b"],
            "zones": ["z1", "z2"],
            "devices": [{"name": "d", "path": "/dev/d"}],
            "options": {"x": "1"},
        }
    )
    assert fields_of(obj, widget_schema) == {
        f("spec", "tags"),  # CR lists are atomic
        (*f("spec", "zones"), ("v", '"z1"')),
        (*f("spec", "zones"), ("v", '"z2"')),
        (*f("spec", "devices"), ("k", '{"name":"d"}')),
        (*f("spec", "devices"), ("k", '{"name":"d"}'), ("f", "name")),
        (*f("spec", "devices"), ("k", '{"name":"d"}'), ("f", "path")),
        f("spec", "options"),  # atomic map
    }


def test_fields_v1_round_trip(sts_schema: SchemaNode, widget_schema: SchemaNode) -> None:
    fields = fields_of(statefulset(), sts_schema)
    assert to_fields_v1(fields) == STATEFULSET_APPLY_FIELDS_V1
    assert from_fields_v1(STATEFULSET_APPLY_FIELDS_V1) == fields
    crd_fields = fields_of(widget({"zones": ["b", "a"], "options": {}}), widget_schema)
    encoded = to_fields_v1(crd_fields)
    assert encoded == {"f:spec": {"f:options": {}, "f:zones": {'v:"a"': {}, 'v:"b"': {}}}}
    assert from_fields_v1(encoded) == crd_fields


def test_from_fields_v1_normalises_keys_and_reads_members() -> None:
    parsed = from_fields_v1(
        {"f:spec": {".": {}, "f:ports": {'k:{"protocol":"TCP", "port":80}': {".": {}}}}}
    )
    assert parsed == {
        f("spec"),
        (*f("spec", "ports"), ("k", '{"port":80,"protocol":"TCP"}')),
    }
    with pytest.raises(ValueError, match="invalid path element"):
        from_fields_v1({"x:y": {}})


def test_format_path_uses_apiserver_notation() -> None:
    assert format_path(f("spec", "selector")) == ".spec.selector"
    assert (
        format_path((*f("spec", "containers"), ("k", '{"name":"c"}'), ("f", "image")))
        == '.spec.containers[name="c"].image'
    )
    assert (
        format_path((*f("spec", "ports"), ("k", '{"port":80,"protocol":"TCP"}')))
        == '.spec.ports[port=80,protocol="TCP"]'
    )
    assert format_path((*f("metadata", "finalizers"), ("v", '"x"'))) == '.metadata.finalizers[="x"]'


# --- server-side apply --------------------------------------------------------------------------


def apply(
    live: JsonDict | None,
    config: JsonDict,
    schema: SchemaNode,
    manager: str = "kubectl",
    *,
    force: bool = False,
    now: str = T1,
    api_version: str = "apps/v1",
    **kwargs: Any,
) -> JsonDict:
    return server_side_apply(
        live,
        config,
        manager=manager,
        force=force,
        schema=schema,
        api_version=api_version,
        now=now,
        **kwargs,
    )


def test_reapplying_the_same_configuration_is_a_no_op(sts_schema: SchemaNode) -> None:
    first = apply(None, statefulset(), sts_schema, now=T0)
    again = apply(first, statefulset(), sts_schema, now=T1)
    assert again == first


def test_reapplying_a_changed_value_updates_time_but_not_fields(sts_schema: SchemaNode) -> None:
    first = apply(None, statefulset(), sts_schema, now=T0)
    second = apply(first, statefulset(image="registry/tango:9.6"), sts_schema, now=T1)
    assert second["spec"]["template"]["spec"]["containers"][0]["image"] == "registry/tango:9.6"
    assert entries(second)[0]["time"] == T1
    assert entries(second)[0]["fieldsV1"] == STATEFULSET_APPLY_FIELDS_V1


def test_conflict_with_update_manager_has_the_apiserver_body(svc_schema: SchemaNode) -> None:
    live = record_update(
        None,
        service(),
        manager="kubectl-client-side-apply",
        schema=svc_schema,
        api_version="v1",
        now=T0,
    )
    with pytest.raises(ApiError) as caught:
        apply(live, service({"app": "other"}), svc_schema, api_version="v1")
    assert caught.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using v1: .spec.selector",
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-client-side-apply" using v1',
                    "field": ".spec.selector",
                }
            ]
        },
        "code": 409,
    }


def test_post_by_python_client_then_apply_by_operator_conflicts(sts_schema: SchemaNode) -> None:
    live = record_update(
        None,
        statefulset(),
        manager="OpenAPI-Generator",
        schema=sts_schema,
        api_version="apps/v1",
        now=T0,
    )
    with pytest.raises(ApiError) as caught:
        apply(live, statefulset(replicas=3, image="registry/tango:9.6"), sts_schema, "operator")
    error = caught.value
    assert error.code == 409
    assert error.message == (
        'Apply failed with 2 conflicts: conflicts with "OpenAPI-Generator" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="databaseds"].image'
    )
    assert error.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "OpenAPI-Generator" using apps/v1',
                "field": ".spec.replicas",
            },
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "OpenAPI-Generator" using apps/v1',
                "field": '.spec.template.spec.containers[name="databaseds"].image',
            },
        ]
    }


def test_conflicts_with_several_managers_are_grouped_by_sorted_manager() -> None:
    error = conflict_error(
        [
            (ManagerKey("zeta", "Apply", "", ""), f("spec", "b")),
            (ManagerKey("alpha", "Update", "v1", "status"), f("spec", "a")),
        ]
    )
    assert error.message == (
        "Apply failed with 2 conflicts: "
        'conflicts with "alpha" with subresource "status" using v1:\n'
        "- .spec.a\n"
        'conflicts with "zeta":\n'
        "- .spec.b"
    )


def test_conflict_between_two_appliers_names_the_apply_manager(cm_schema: SchemaNode) -> None:
    live = apply(None, configmap({"a": "1"}), cm_schema, "helm", api_version="v1")
    with pytest.raises(ApiError) as caught:
        apply(live, configmap({"a": "2"}), cm_schema, "operator", api_version="v1")
    assert caught.value.message == 'Apply failed with 1 conflict: conflict with "helm": .data.a'


def test_equal_values_are_shared(sts_schema: SchemaNode) -> None:
    live = record_update(
        None,
        statefulset(),
        manager="OpenAPI-Generator",
        schema=sts_schema,
        api_version="apps/v1",
        now=T0,
    )
    shared = apply(live, statefulset(), sts_schema, "operator")
    replicas = f("spec", "replicas")
    assert managers_of(shared, replicas) == ["OpenAPI-Generator", "operator"]
    # Apply entries sort before Update entries
    assert [e["operation"] for e in entries(shared)] == ["Apply", "Update"]
    # a no-op apply by a new manager does not time its entry (upstream keeps times of changes)
    assert "time" not in entry(shared, "operator", "Apply")
    assert entry(shared, "OpenAPI-Generator", "Update") == entry(
        live, "OpenAPI-Generator", "Update"
    )


def test_force_takes_ownership(sts_schema: SchemaNode) -> None:
    live = record_update(
        None,
        statefulset(),
        manager="OpenAPI-Generator",
        schema=sts_schema,
        api_version="apps/v1",
        now=T0,
    )
    forced = apply(live, statefulset(replicas=3), sts_schema, "operator", force=True)
    assert forced["spec"]["replicas"] == 3
    assert managers_of(forced, f("spec", "replicas")) == ["operator"]
    assert managers_of(forced, f("spec", "serviceName")) == ["OpenAPI-Generator", "operator"]
    # the Update entry lost the field but kept its time
    assert entry(forced, "OpenAPI-Generator", "Update")["time"] == T0
    assert "f:replicas" not in entry(forced, "OpenAPI-Generator", "Update")["fieldsV1"]["f:spec"]
    assert entry(forced, "operator", "Apply")["time"] == T1


def test_dropping_a_field_from_the_configuration_removes_it(sts_schema: SchemaNode) -> None:
    first = apply(None, statefulset(), sts_schema, now=T0)
    smaller = statefulset()
    del smaller["metadata"]["labels"]
    container = smaller["spec"]["template"]["spec"]["containers"][0]
    del container["env"]
    result = apply(first, smaller, sts_schema, now=T1)
    assert "labels" not in result["metadata"]
    assert "env" not in result["spec"]["template"]["spec"]["containers"][0]
    fields = entry(result, "kubectl", "Apply")["fieldsV1"]
    assert "f:metadata" not in fields
    assert (
        "f:env"
        not in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"databaseds"}']
    )


def test_dropped_field_owned_by_another_manager_survives(cm_schema: SchemaNode) -> None:
    first = apply(None, configmap({"a": "1", "b": "2"}), cm_schema, "helm", api_version="v1")
    both = apply(first, configmap({"b": "2"}), cm_schema, "operator", api_version="v1")
    result = apply(both, configmap({"a": "1"}), cm_schema, "helm", api_version="v1")
    assert result["data"] == {"a": "1", "b": "2"}
    assert managers_of(result, f("data", "b")) == ["operator"]
    # once nobody else owns it, dropping it removes it; "a" becomes shared (equal value)
    gone = apply(result, configmap({"a": "1"}), cm_schema, "operator", api_version="v1")
    assert gone["data"] == {"a": "1"}
    assert managers_of(gone, f("data", "a")) == ["helm", "operator"]


def test_unowned_fields_stay_when_the_applier_drops_its_own(cm_schema: SchemaNode) -> None:
    # "b" was set by no manager (e.g. defaulted): pruning only removes what the applier owned
    first = apply(None, configmap({"a": "1"}), cm_schema, "helm", api_version="v1")
    first["data"]["b"] = "defaulted"
    result = apply(first, configmap({}), cm_schema, "helm", api_version="v1")
    assert result["data"] == {"b": "defaulted"}


def test_dropping_a_list_item_removes_it_and_its_unowned_fields(sts_schema: SchemaNode) -> None:
    two = statefulset()
    containers = two["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "sidecar", "image": "busybox"})
    first = apply(None, two, sts_schema, now=T0)
    first["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = "Always"  # defaulted
    result = apply(first, statefulset(), sts_schema, now=T1)
    assert [c["name"] for c in result["spec"]["template"]["spec"]["containers"]] == ["databaseds"]


def test_merge_rules_by_list_type(widget_schema: SchemaNode) -> None:
    live = apply(
        None,
        widget(
            {
                "tags": ["a", "b"],
                "zones": ["z1"],
                "devices": [{"name": "d1", "path": "/dev/1"}],
                "options": {"x": "1", "y": "2"},
            }
        ),
        widget_schema,
        "helm",
        api_version="example.com/v1",
    )
    merged = apply(
        live,
        widget(
            {
                "zones": ["z2"],
                "devices": [{"name": "d2", "path": "/dev/2"}, {"name": "d1", "mode": "rw"}],
            }
        ),
        widget_schema,
        "operator",
        api_version="example.com/v1",
    )
    spec = merged["spec"]
    assert spec["tags"] == ["a", "b"]  # untouched atomic list of another manager
    assert spec["zones"] == ["z1", "z2"]  # sets are unioned
    # map lists merge items by key; shared items follow the applied order
    assert spec["devices"] == [
        {"name": "d2", "path": "/dev/2"},
        {"name": "d1", "path": "/dev/1", "mode": "rw"},
    ]
    assert spec["options"] == {"x": "1", "y": "2"}
    replaced = apply(
        merged,
        widget({"tags": ["a", "b"], "options": {"x": "1", "y": "2"}}),
        widget_schema,
        "third",
        api_version="example.com/v1",
    )
    # atomic values: shared when equal
    assert managers_of(replaced, f("spec", "tags")) == ["helm", "third"]
    forced = apply(
        replaced,
        widget({"tags": ["c"], "options": {"z": "3"}}),
        widget_schema,
        "third",
        force=True,
        api_version="example.com/v1",
    )
    assert forced["spec"]["tags"] == ["c"]
    assert forced["spec"]["options"] == {"z": "3"}  # atomic maps are replaced whole


def test_new_map_list_items_are_appended(svc_schema: SchemaNode) -> None:
    live = apply(None, service(), svc_schema, "helm", api_version="v1")
    config = service()
    config["spec"]["ports"] = [{"port": 10001, "name": "extra"}]
    merged = apply(live, config, svc_schema, "operator", api_version="v1")
    assert [p["port"] for p in merged["spec"]["ports"]] == [10000, 10001]
    assert entry(merged, "operator", "Apply")["fieldsV1"] == {
        "f:spec": {
            "f:ports": {'k:{"port":10001,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}}},
            "f:selector": {},
        }
    }


def test_apply_rejects_managed_fields_and_missing_keys(
    cm_schema: SchemaNode, svc_schema: SchemaNode
) -> None:
    config = configmap({"a": "1"})
    config["metadata"]["managedFields"] = []
    with pytest.raises(ApiError) as caught:
        apply(None, config, cm_schema, api_version="v1")
    assert (caught.value.code, caught.value.message) == (400, "metadata.managedFields must be nil")
    keyless = service()
    keyless["spec"]["ports"] = [{"targetPort": 80}]
    with pytest.raises(ApiError) as missing:
        apply(None, keyless, svc_schema, api_version="v1")
    assert missing.value.code == 500
    assert missing.value.message == (
        "failed to create typed patch object (tango/db; /v1, Kind=Service): .spec.ports: "
        'element 0: associative list with keys has an element that omits key field "port" '
        "(and doesn't have default value)"
    )


def test_apply_to_untracked_object_creates_before_first_apply(cm_schema: SchemaNode) -> None:
    live = configmap({"a": "1"})
    with pytest.raises(ApiError) as caught:
        apply(live, configmap({"a": "2"}), cm_schema, api_version="v1")
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a'
    )


def test_status_is_not_owned_through_the_main_resource(widget_schema: SchemaNode) -> None:
    config = widget({"size": 1})
    config["status"] = {"phase": "Ready"}
    result = apply(None, config, widget_schema, api_version="example.com/v1")
    assert entry(result, "kubectl", "Apply")["fieldsV1"] == {"f:spec": {"f:size": {}}}
    no_subresource = apply(
        None, config, widget_schema, api_version="example.com/v1", status_subresource=False
    )
    assert entry(no_subresource, "kubectl", "Apply")["fieldsV1"] == {
        "f:spec": {"f:size": {}},
        "f:status": {"f:phase": {}},
    }


def test_status_subresource_writes_own_status_only(widget_schema: SchemaNode) -> None:
    live = apply(None, widget({"size": 1}), widget_schema, "helm", api_version="example.com/v1")
    new = copy.deepcopy(live)
    new["status"] = {"phase": "Ready"}
    updated = record_update(
        live,
        new,
        manager="operator",
        schema=widget_schema,
        api_version="example.com/v1",
        now=T2,
        subresource="status",
    )
    assert entry(updated, "operator", "Update") == {
        "manager": "operator",
        "operation": "Update",
        "apiVersion": "example.com/v1",
        "time": T2,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {".": {}, "f:phase": {}}},
        "subresource": "status",
    }
    status_config = widget({"size": 99})
    status_config["status"] = {"phase": "Failed"}
    applied = apply(
        updated,
        status_config,
        widget_schema,
        "operator",
        api_version="example.com/v1",
        subresource="status",
        force=True,
    )
    status_entry = entry(applied, "operator", "Apply")
    assert status_entry["subresource"] == "status"
    assert status_entry["fieldsV1"] == {"f:status": {"f:phase": {}}}


# --- non-apply writes ---------------------------------------------------------------------------


def test_update_takes_fields_from_appliers_and_keeps_times(cm_schema: SchemaNode) -> None:
    live = apply(None, configmap({"a": "1", "b": "2"}), cm_schema, "helm", now=T0, api_version="v1")
    new = copy.deepcopy(live)
    new["data"]["a"] = "changed"
    new["data"]["c"] = "3"
    del new["data"]["b"]
    updated = record_update(
        live, new, manager="operator", schema=cm_schema, api_version="v1", now=T1
    )
    assert entries(updated) == [
        {
            "manager": "operator",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}, "f:c": {}}},
        }
    ]
    # helm owned a (taken by the Update) and b (removed): its entry is gone
    assert managers_of(updated, f("data", "a")) == ["operator"]


def test_update_only_removing_fields_keeps_the_writer_time(cm_schema: SchemaNode) -> None:
    live = record_update(
        None,
        configmap({"a": "1", "b": "2"}),
        manager="op",
        schema=cm_schema,
        api_version="v1",
        now=T0,
    )
    new = copy.deepcopy(live)
    del new["data"]["b"]
    updated = record_update(live, new, manager="op", schema=cm_schema, api_version="v1", now=T1)
    assert entries(updated) == [
        {
            "manager": "op",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:a": {}}},
        }
    ]


def test_noop_update_keeps_managed_fields_identical(sts_schema: SchemaNode) -> None:
    live = apply(None, statefulset(), sts_schema, now=T0)
    live = record_update(
        live,
        {**live, "spec": {**live["spec"], "replicas": 2}},
        manager="OpenAPI-Generator",
        schema=sts_schema,
        api_version="apps/v1",
        now=T1,
    )
    again = record_update(
        live,
        copy.deepcopy(live),
        manager="someone-else",
        schema=sts_schema,
        api_version="apps/v1",
        now=T2,
    )
    assert again["metadata"]["managedFields"] == live["metadata"]["managedFields"]
    without_field = copy.deepcopy(live)
    del without_field["metadata"]["managedFields"]  # a client that does not send them
    again = record_update(
        live, without_field, manager="x", schema=sts_schema, api_version="apps/v1", now=T2
    )
    assert again == live


def test_update_entries_are_per_api_version(cm_schema: SchemaNode) -> None:
    live = record_update(
        None, configmap({"a": "1"}), manager="op", schema=cm_schema, api_version="v1", now=T0
    )
    new = copy.deepcopy(live)
    new["data"]["b"] = "2"
    updated = record_update(live, new, manager="op", schema=cm_schema, api_version="v2", now=T1)
    assert [(e["apiVersion"], e["time"]) for e in entries(updated)] == [("v1", T0), ("v2", T1)]


def test_client_sent_managed_fields(cm_schema: SchemaNode) -> None:
    live = record_update(
        None, configmap({"a": "1"}), manager="op", schema=cm_schema, api_version="v1", now=T0
    )
    # a client may rewrite ownership: its entries are the base of the write
    rewritten = copy.deepcopy(live)
    rewritten["metadata"]["managedFields"][0]["manager"] = "renamed"
    result = record_update(
        live, rewritten, manager="op", schema=cm_schema, api_version="v1", now=T1
    )
    assert [e["manager"] for e in entries(result)] == ["renamed"]
    # [] resets tracking: the object is untracked afterwards, even across further updates
    reset = copy.deepcopy(live)
    reset["metadata"]["managedFields"] = []
    untracked = record_update(live, reset, manager="op", schema=cm_schema, api_version="v1", now=T1)
    assert "managedFields" not in untracked["metadata"]
    changed = copy.deepcopy(untracked)
    changed["data"]["b"] = "2"
    still = record_update(
        untracked, changed, manager="op", schema=cm_schema, api_version="v1", now=T2
    )
    assert "managedFields" not in still["metadata"]
    # on a subresource, the request's managedFields are ignored
    on_status = record_update(
        live, reset, manager="op", schema=cm_schema, api_version="v1", now=T1, subresource="status"
    )
    assert entries(on_status) == entries(live)


def test_inputs_are_not_mutated(sts_schema: SchemaNode) -> None:
    live = apply(None, statefulset(), sts_schema, now=T0)
    config = statefulset(replicas=5)
    snapshot = copy.deepcopy((live, config))
    apply(live, config, sts_schema, "other", force=True)
    record_update(live, config, manager="x", schema=sts_schema, api_version="apps/v1", now=T1)
    assert (live, config) == snapshot
