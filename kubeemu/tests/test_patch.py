"""Tests of kubeemu.patch: merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Expected values come from the RFCs and from Kubernetes' documented strategic-merge-patch semantics
(the API conventions' "strategic-merge-patch.md", the "preserve order in strategic merge patch"
design proposal, and the behaviour of k8s.io/apimachinery/pkg/util/strategicpatch), applied to the
real Kubernetes 1.31 schemas.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubeemu.errors import ApiError
from kubeemu.patch import apply_json_patch, apply_merge_patch, apply_patch, media_type
from kubeemu.schema import UNKNOWN, SchemaNode, builtin_schema
from kubeemu.strategic import apply_strategic_merge_patch

JsonDict = dict[str, Any]


@pytest.fixture(scope="module")
def statefulset_schema() -> SchemaNode:
    return builtin_schema("apps", "v1", "StatefulSet")


@pytest.fixture(scope="module")
def deployment_schema() -> SchemaNode:
    return builtin_schema("apps", "v1", "Deployment")


@pytest.fixture(scope="module")
def pod_schema() -> SchemaNode:
    return builtin_schema("", "v1", "Pod")


@pytest.fixture(scope="module")
def service_schema() -> SchemaNode:
    return builtin_schema("", "v1", "Service")


@pytest.fixture(scope="module")
def configmap_schema() -> SchemaNode:
    return builtin_schema("", "v1", "ConfigMap")


def statefulset() -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "db",
            "namespace": "ns",
            "labels": {"app": "db", "tier": "data"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "db:1",
                            "command": ["run", "--fast"],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "value": "2"},
                            ],
                            "ports": [{"containerPort": 5432, "name": "pg"}],
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                        },
                        {"name": "exporter", "image": "exp:1"},
                    ]
                }
            },
        },
    }


def containers(obj: JsonDict) -> list[JsonDict]:
    result: list[JsonDict] = obj["spec"]["template"]["spec"]["containers"]
    return result


def container(obj: JsonDict, name: str) -> JsonDict:
    return next(c for c in containers(obj) if c["name"] == name)


def keys_with_dollar(value: Any) -> list[str]:
    """Every map key starting with ``$`` anywhere in ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key.startswith("$"):
                found.append(key)
            found += keys_with_dollar(sub)
    elif isinstance(value, list):
        for item in value:
            found += keys_with_dollar(item)
    return found


# ================================================================================================
# JSON merge patch (RFC 7386)
# ================================================================================================
class TestMergePatch:
    def test_null_deletes_and_objects_merge(self) -> None:
        target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}
        patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"k2": "v2"}}
        assert apply_merge_patch(target, patch) == {
            "metadata": {"labels": {"b": "2", "c": "3"}},
            "data": {"k": "v", "k2": "v2"},
        }

    def test_lists_are_replaced_not_merged(self) -> None:
        target = {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b"}]}}
        patch = {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}
        assert apply_merge_patch(target, patch) == patch

    def test_object_replaces_scalar_and_nulls_inside_are_dropped(self) -> None:
        # RFC 7386 §2: a non-object target becomes {} before the object patch is merged in.
        assert apply_merge_patch({"a": "x"}, {"a": {"b": "c", "d": None}}) == {"a": {"b": "c"}}

    def test_deleting_missing_key_is_a_noop(self) -> None:
        assert apply_merge_patch({"a": 1}, {"b": None}) == {"a": 1}

    def test_target_is_not_mutated(self) -> None:
        target = {"metadata": {"labels": {"a": "1"}}}
        snapshot = copy.deepcopy(target)
        apply_merge_patch(target, {"metadata": {"labels": {"a": None}}})
        assert target == snapshot

    @pytest.mark.parametrize("patch", [["a"], "text", 3, True])
    def test_non_object_patch_is_bad_request(self, patch: Any) -> None:
        with pytest.raises(ApiError) as caught:
            apply_merge_patch({"a": 1}, patch)
        assert caught.value.code == 400
        assert caught.value.reason == "BadRequest"

    def test_null_patch_is_bad_request(self) -> None:
        with pytest.raises(ApiError) as caught:
            apply_merge_patch({"a": 1}, None)
        assert (caught.value.code, caught.value.message) == (400, "Invalid JSON Patch")


# ================================================================================================
# JSON patch (RFC 6902)
# ================================================================================================
class TestJsonPatch:
    def test_operations_apply_in_order(self) -> None:
        target = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"items": [1, 2]}}
        operations = [
            {"op": "test", "path": "/metadata/name", "value": "x"},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "one"},
            {"op": "add", "path": "/spec/items/-", "value": 3},
            {"op": "remove", "path": "/spec/items/0"},
            {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
            {"op": "move", "from": "/metadata/annotations", "path": "/metadata/generateName"},
        ]
        assert apply_json_patch(target, operations) == {
            "metadata": {"name": "x", "labels": {"a": "one", "b": "2"}, "generateName": "x"},
            "spec": {"items": [2, 3]},
        }

    def test_target_is_not_mutated(self) -> None:
        target = {"a": {"b": 1}}
        apply_json_patch(target, [{"op": "replace", "path": "/a/b", "value": 2}])
        assert target == {"a": {"b": 1}}

    def test_empty_and_null_patches_change_nothing(self) -> None:
        assert apply_json_patch({"a": 1}, []) == {"a": 1}
        assert apply_json_patch({"a": 1}, None) == {"a": 1}

    def test_failed_test_operation_is_invalid(self) -> None:
        with pytest.raises(ApiError) as caught:
            apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
        error = caught.value
        assert (error.code, error.reason) == (422, "Invalid")
        assert error.message == "the server rejected our request due to an error in our request"
        assert error.details is not None
        assert "testing value /a failed" in error.details["causes"][0]["message"]

    @pytest.mark.parametrize(
        "operation",
        [
            {"op": "remove", "path": "/missing"},
            {"op": "replace", "path": "/missing", "value": 1},
            {"op": "add", "path": "/missing/child", "value": 1},
        ],
    )
    def test_operation_on_missing_path_is_invalid(self, operation: JsonDict) -> None:
        with pytest.raises(ApiError) as caught:
            apply_json_patch({"a": 1}, [operation])
        assert (caught.value.code, caught.value.reason) == (422, "Invalid")
        assert caught.value.details is not None
        assert "/missing" in caught.value.details["causes"][0]["message"]

    def test_failure_applies_nothing(self) -> None:
        target = {"a": 1}
        with pytest.raises(ApiError):
            apply_json_patch(
                target, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/c"}]
            )
        assert target == {"a": 1}

    @pytest.mark.parametrize(
        "operation",
        [{"op": "frobnicate", "path": "/a"}, {"path": "/a", "value": 1}, {"op": "add", "value": 1}],
    )
    def test_malformed_operation_is_rejected_like_the_apiserver(self, operation: JsonDict) -> None:
        # DecodePatch accepts any list of objects; the operation fails when applied → 422.
        with pytest.raises(ApiError) as caught:
            apply_json_patch({"a": 1}, [operation])
        assert caught.value.code == 422

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
            ("add", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
            ([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
        ],
    )
    def test_body_that_is_not_a_list_of_operations_is_bad_request(
        self, body: Any, expected: str
    ) -> None:
        with pytest.raises(ApiError) as caught:
            apply_json_patch({"a": 1}, body)
        assert (caught.value.code, caught.value.reason, caught.value.message) == (
            400,
            "BadRequest",
            expected,
        )


# ================================================================================================
# Strategic merge patch
# ================================================================================================
class TestStrategicMergeMaps:
    def test_maps_merge_and_null_deletes_a_label(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}
        patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"k2": "v2"}}
        assert apply_strategic_merge_patch(target, patch, configmap_schema) == {
            "metadata": {"name": "c", "labels": {"b": "2", "c": "3"}},
            "data": {"k": "v", "k2": "v2"},
        }

    def test_patch_replace_directive_replaces_a_map(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}}
        patch = {"metadata": {"labels": {"$patch": "replace", "z": "26"}}}
        assert apply_strategic_merge_patch(target, patch, configmap_schema) == {
            "metadata": {"name": "c", "labels": {"z": "26"}}
        }

    def test_patch_delete_directive_empties_a_map(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
        patch = {"data": {"$patch": "delete"}}
        assert apply_strategic_merge_patch(target, patch, configmap_schema) == {
            "metadata": {"name": "c"},
            "data": {},
        }

    def test_patch_merge_directive_in_a_map_is_an_error_like_upstream(
        self, configmap_schema: SchemaNode
    ) -> None:
        # strategicpatch.handleDirectiveInMergeMap only knows replace and delete.
        with pytest.raises(ApiError) as caught:
            apply_strategic_merge_patch(
                {"data": {"a": "1"}}, {"data": {"$patch": "merge", "b": "2"}}, configmap_schema
            )
        assert caught.value.code == 500
        assert caught.value.message.startswith("unknown patch type: merge in map:")

    def test_retain_keys_drops_unlisted_fields(self, deployment_schema: SchemaNode) -> None:
        # Deployment spec.strategy has x-kubernetes-patch-strategy: retainKeys; kubectl sends
        # $retainKeys when switching RollingUpdate → Recreate.
        target = {
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            }
        }
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
        assert apply_strategic_merge_patch(target, patch, deployment_schema) == {
            "spec": {"replicas": 2, "strategy": {"type": "Recreate"}}
        }

    def test_without_retain_keys_other_fields_survive(self, deployment_schema: SchemaNode) -> None:
        target = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
        patch = {"spec": {"strategy": {"type": "Recreate"}}}
        result = apply_strategic_merge_patch(target, patch, deployment_schema)
        assert result["spec"]["strategy"] == {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}

    def test_retain_keys_must_list_every_patched_field(self, deployment_schema: SchemaNode) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}
        with pytest.raises(ApiError) as caught:
            apply_strategic_merge_patch({"spec": {}}, patch, deployment_schema)
        assert (caught.value.code, caught.value.message) == (
            400,
            "invalid patch format of retainKeys",
        )

    def test_retain_keys_inside_merge_list_items(self, pod_schema: SchemaNode) -> None:
        # Pod spec.volumes is "merge,retainKeys": kubectl sends $retainKeys in each volume.
        target = {
            "spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}
        }
        patch = {
            "spec": {
                "volumes": [
                    {"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}
                ]
            }
        }
        result = apply_strategic_merge_patch(target, patch, pod_schema)
        by_name = {v["name"]: v for v in result["spec"]["volumes"]}
        assert by_name == {
            "v": {"name": "v", "configMap": {"name": "cm"}},
            "w": {"name": "w", "emptyDir": {}},
        }

    def test_unknown_schema_merges_maps_and_replaces_lists(self) -> None:
        target = {"spec": {"a": {"x": 1, "y": 2}, "items": [{"name": "a"}, {"name": "b"}]}}
        patch = {"spec": {"a": {"y": None, "z": 3}, "items": [{"name": "c"}]}}
        assert apply_strategic_merge_patch(target, patch, UNKNOWN) == {
            "spec": {"a": {"x": 1, "z": 3}, "items": [{"name": "c"}]}
        }

    def test_non_object_body_is_bad_request(self, configmap_schema: SchemaNode) -> None:
        with pytest.raises(ApiError) as caught:
            apply_strategic_merge_patch({}, [{"op": "add"}], configmap_schema)
        assert caught.value.code == 400
        assert caught.value.message == (
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )


class TestStrategicMergeLists:
    def test_container_image_merged_by_name(self, statefulset_schema: SchemaNode) -> None:
        target = statefulset()
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:2"}]}}}}
        result = apply_strategic_merge_patch(target, patch, statefulset_schema)
        expected_db = copy.deepcopy(container(target, "db"))
        expected_db["image"] = "db:2"
        assert container(result, "db") == expected_db
        assert container(result, "exporter") == {"name": "exporter", "image": "exp:1"}
        assert [c["name"] for c in containers(result)] == ["db", "exporter"]
        assert target == statefulset()  # input untouched

    def test_list_without_merge_strategy_is_replaced(self, statefulset_schema: SchemaNode) -> None:
        # containers[].command has no patch strategy: the patch list replaces it wholesale.
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "db", "command": ["x"]}]}}}}
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert container(result, "db")["command"] == ["x"]

    def test_env_entry_added_and_another_deleted(self, statefulset_schema: SchemaNode) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "db",
                                "env": [
                                    {"name": "B", "$patch": "delete"},
                                    {"name": "C", "value": "3"},
                                    {"name": "A", "value": "one"},
                                ],
                            }
                        ]
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        env = container(result, "db")["env"]
        # Without $setElementOrder the patch list's relative order is respected (C before A).
        assert env == [{"name": "C", "value": "3"}, {"name": "A", "value": "one"}]

    def test_order_without_set_element_order_follows_design_proposal(
        self, statefulset_schema: SchemaNode
    ) -> None:
        # "Preserve order in SMP" proposal: live [B, C, A], patch [A', B', D] → [C, A', B', D].
        def env_container(env: list[JsonDict]) -> JsonDict:
            return {"spec": {"template": {"spec": {"containers": [{"name": "db", "env": env}]}}}}

        live = env_container([{"name": n, "value": "old"} for n in ("B", "C", "A")])
        patch = env_container(
            [{"name": "A", "value": "new"}, {"name": "B", "value": "new"}, {"name": "D"}]
        )
        result = apply_strategic_merge_patch(live, patch, statefulset_schema)
        assert container(result, "db")["env"] == [
            {"name": "C", "value": "old"},
            {"name": "A", "value": "new"},
            {"name": "B", "value": "new"},
            {"name": "D"},
        ]

    def test_new_item_goes_before_later_server_only_items(
        self, statefulset_schema: SchemaNode
    ) -> None:
        # strategicpatch.mergeSortedSlice only lets a server-only item go first when it precedes
        # the next patch item in the live list; a brand-new item is never found there.
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "init", "image": "i"}]}}}}
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert [c["name"] for c in containers(result)] == ["init", "db", "exporter"]

    def test_set_element_order_as_kubectl_apply_sends_it(
        self, statefulset_schema: SchemaNode
    ) -> None:
        # kubectl apply: last-applied [db, exporter] → new config [exporter, db, sidecar] with a
        # new image for db.
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [
                            {"name": "exporter"},
                            {"name": "db"},
                            {"name": "sidecar"},
                        ],
                        "containers": [
                            {"name": "db", "image": "db:2"},
                            {"name": "sidecar", "image": "sc:1"},
                        ],
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert [c["name"] for c in containers(result)] == ["exporter", "db", "sidecar"]
        assert container(result, "db")["image"] == "db:2"
        assert container(result, "db")["env"] == container(statefulset(), "db")["env"]
        assert container(result, "sidecar") == {"name": "sidecar", "image": "sc:1"}
        assert keys_with_dollar(result) == []

    def test_set_element_order_alone_reorders(self, statefulset_schema: SchemaNode) -> None:
        # Proposal: "$setElementOrder may contain elements not present in the patch list".
        patch = {
            "spec": {
                "template": {
                    "spec": {"$setElementOrder/containers": [{"name": "exporter"}, {"name": "db"}]}
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert [c["name"] for c in containers(result)] == ["exporter", "db"]
        assert container(result, "db") == container(statefulset(), "db")

    def test_set_element_order_naming_absent_items_ignores_them(
        self, statefulset_schema: SchemaNode
    ) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [
                            {"name": "ghost"},
                            {"name": "db"},
                            {"name": "exporter"},
                        ],
                        "containers": [{"name": "db"}, {"name": "exporter"}],
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert [c["name"] for c in containers(result)] == ["db", "exporter"]

    def test_server_only_items_before_ordered_ones_stay_first(
        self, statefulset_schema: SchemaNode
    ) -> None:
        def with_env(names: list[str]) -> JsonDict:
            env = [{"name": n} for n in names]
            return {"spec": {"template": {"spec": {"containers": [{"name": "db", "env": env}]}}}}

        live = with_env(["C", "D", "A", "B"])
        patch = with_env(["B", "A"])
        containers_patch = patch["spec"]["template"]["spec"]["containers"][0]
        containers_patch["$setElementOrder/env"] = [{"name": "B"}, {"name": "A"}]
        result = apply_strategic_merge_patch(live, patch, statefulset_schema)
        assert [e["name"] for e in container(result, "db")["env"]] == ["C", "D", "B", "A"]

    def test_patch_list_out_of_set_element_order_is_rejected(
        self, statefulset_schema: SchemaNode
    ) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "db"}, {"name": "exporter"}],
                        "containers": [{"name": "exporter"}, {"name": "db"}],
                    }
                }
            }
        }
        with pytest.raises(ApiError) as caught:
            apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert "doesn't match $setElementOrder list" in caught.value.message

    def test_delete_directive_on_container(self, statefulset_schema: SchemaNode) -> None:
        patch = {
            "spec": {
                "template": {"spec": {"containers": [{"name": "exporter", "$patch": "delete"}]}}
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert [c["name"] for c in containers(result)] == ["db"]

    def test_replace_directive_element_replaces_the_whole_list(
        self, statefulset_schema: SchemaNode
    ) -> None:
        # strategic-merge-patch.md: a {"$patch": "replace"} element makes the list be replaced.
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "solo", "image": "solo:1"}, {"$patch": "replace"}]
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert containers(result) == [{"name": "solo", "image": "solo:1"}]

    def test_ports_by_container_port_and_mounts_by_mount_path(
        self, statefulset_schema: SchemaNode
    ) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "db",
                                "ports": [{"containerPort": 5432, "protocol": "TCP"}],
                                "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                            }
                        ]
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        db = container(result, "db")
        assert db["ports"] == [{"containerPort": 5432, "name": "pg", "protocol": "TCP"}]
        assert db["volumeMounts"] == [{"mountPath": "/data", "name": "data", "readOnly": True}]

    def test_service_ports_merge_by_port(self, service_schema: SchemaNode) -> None:
        target = {
            "spec": {
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 80},
                    {"name": "https", "port": 443},
                ]
            }
        }
        patch = {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
        result = apply_strategic_merge_patch(target, patch, service_schema)
        assert sorted(result["spec"]["ports"], key=lambda p: p["port"]) == [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443},
        ]

    def test_owner_references_merge_by_uid(self, configmap_schema: SchemaNode) -> None:
        ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"}
        target = {"metadata": {"ownerReferences": [ref]}}
        patch = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
        result = apply_strategic_merge_patch(target, patch, configmap_schema)
        assert result["metadata"]["ownerReferences"] == [{**ref, "controller": True}]

    def test_pod_conditions_merge_by_type(self, pod_schema: SchemaNode) -> None:
        target = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "Initialized", "status": "True"},
                ]
            }
        }
        patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        result = apply_strategic_merge_patch(target, patch, pod_schema)
        by_type = {c["type"]: c["status"] for c in result["status"]["conditions"]}
        assert by_type == {"Ready": "True", "Initialized": "True"}
        assert len(result["status"]["conditions"]) == 2

    def test_missing_merge_key_is_an_error(self, statefulset_schema: SchemaNode) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
        with pytest.raises(ApiError) as caught:
            apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert caught.value.code == 500
        assert caught.value.message == "map: map[image:x] does not contain declared merge key: name"

    def test_new_merge_list_gets_directives_applied(self, statefulset_schema: SchemaNode) -> None:
        # The object has no template yet: the directives of the patch must still be obeyed and
        # never land in the stored object.
        target: JsonDict = {"metadata": {"name": "db"}}
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                        "containers": [
                            {"name": "a", "$setElementOrder/env": [{"name": "X"}]},
                            {"name": "b", "env": [{"name": "X", "value": None}]},
                            {"name": "c", "$patch": "delete"},
                        ],
                    }
                }
            }
        }
        result = apply_strategic_merge_patch(target, patch, statefulset_schema)
        assert containers(result) == [{"name": "a"}, {"name": "b", "env": [{"name": "X"}]}]
        assert keys_with_dollar(result) == []


class TestStrategicMergePrimitiveLists:
    def test_finalizers_union_without_duplicates(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"finalizers": ["a", "b"]}}
        patch = {"metadata": {"finalizers": ["b", "c"]}}
        result = apply_strategic_merge_patch(target, patch, configmap_schema)
        finalizers = result["metadata"]["finalizers"]
        assert sorted(finalizers) == ["a", "b", "c"]
        assert finalizers.index("b") < finalizers.index("c")  # the patch's relative order

    def test_finalizers_as_kubectl_apply_sends_them(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"finalizers": ["a", "b", "c"]}}
        patch = {
            "metadata": {
                "$setElementOrder/finalizers": ["a", "b", "f"],
                "$deleteFromPrimitiveList/finalizers": ["c"],
                "finalizers": ["f"],
            }
        }
        result = apply_strategic_merge_patch(target, patch, configmap_schema)
        assert result == {"metadata": {"finalizers": ["a", "b", "f"]}}

    def test_delete_from_primitive_list(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"finalizers": ["a", "b", "c"]}}
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}
        result = apply_strategic_merge_patch(target, patch, configmap_schema)
        assert result == {"metadata": {"finalizers": ["a", "c"]}}

    def test_delete_from_absent_list_is_a_noop(self, configmap_schema: SchemaNode) -> None:
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}
        assert apply_strategic_merge_patch({"metadata": {}}, patch, configmap_schema) == {
            "metadata": {}
        }

    def test_null_removes_the_whole_list(self, configmap_schema: SchemaNode) -> None:
        target = {"metadata": {"name": "x", "finalizers": ["a"]}}
        patch = {"metadata": {"finalizers": None}}
        assert apply_strategic_merge_patch(target, patch, configmap_schema) == {
            "metadata": {"name": "x"}
        }

    def test_primitive_list_without_merge_strategy_is_replaced(
        self, statefulset_schema: SchemaNode
    ) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "db", "args": ["-v"]}]}}}}
        result = apply_strategic_merge_patch(statefulset(), patch, statefulset_schema)
        assert container(result, "db")["args"] == ["-v"]


# ================================================================================================
# Dispatcher
# ================================================================================================
class TestApplyPatch:
    def test_media_type_ignores_parameters(self) -> None:
        assert media_type("Application/Merge-Patch+JSON; charset=utf-8") == (
            "application/merge-patch+json"
        )

    def test_dispatches_merge_patch(self, configmap_schema: SchemaNode) -> None:
        body = json.dumps({"data": {"a": None, "b": "2"}}).encode()
        result = apply_patch(
            "application/merge-patch+json; charset=utf-8",
            {"data": {"a": "1"}},
            body,
            configmap_schema,
            is_custom_resource=False,
        )
        assert result == {"data": {"b": "2"}}

    def test_dispatches_json_patch(self, configmap_schema: SchemaNode) -> None:
        body = json.dumps([{"op": "add", "path": "/data/b", "value": "2"}]).encode()
        result = apply_patch(
            "application/json-patch+json",
            {"data": {}},
            body,
            configmap_schema,
            is_custom_resource=True,
        )
        assert result == {"data": {"b": "2"}}

    def test_dispatches_strategic_merge_patch(self, statefulset_schema: SchemaNode) -> None:
        body = json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:9"}]}}}}
        ).encode()
        result = apply_patch(
            "application/strategic-merge-patch+json",
            statefulset(),
            body,
            statefulset_schema,
            is_custom_resource=False,
        )
        assert [c["name"] for c in containers(result)] == ["db", "exporter"]
        assert container(result, "db")["image"] == "db:9"

    def test_strategic_merge_patch_on_custom_resource_is_415(self) -> None:
        with pytest.raises(ApiError) as caught:
            apply_patch(
                "application/strategic-merge-patch+json",
                {},
                b"{}",
                UNKNOWN,
                is_custom_resource=True,
            )
        assert (caught.value.code, caught.value.reason) == (415, "UnsupportedMediaType")

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
    def test_unknown_media_type_is_415(self, content_type: str) -> None:
        with pytest.raises(ApiError) as caught:
            apply_patch(content_type, {}, b"{}", UNKNOWN, is_custom_resource=False)
        assert caught.value.code == 415

    def test_apply_patch_is_routed_elsewhere(self) -> None:
        with pytest.raises(ValueError, match="server-side apply"):
            apply_patch(
                "application/apply-patch+yaml", {}, b"{}", UNKNOWN, is_custom_resource=False
            )

    @pytest.mark.parametrize(
        "content_type", ["application/json-patch+json", "application/strategic-merge-patch+json"]
    )
    def test_bad_json_is_400_with_go_style_message(
        self, content_type: str, configmap_schema: SchemaNode
    ) -> None:
        with pytest.raises(ApiError) as caught:
            apply_patch(content_type, {}, b"{nope", configmap_schema, is_custom_resource=False)
        assert caught.value.code == 400
        assert caught.value.message == (
            "invalid character 'n' looking for beginning of object key string"
        )

    def test_empty_body_is_400(self, configmap_schema: SchemaNode) -> None:
        with pytest.raises(ApiError) as caught:
            apply_patch(
                "application/strategic-merge-patch+json",
                {},
                b"",
                configmap_schema,
                is_custom_resource=False,
            )
        assert (caught.value.code, caught.value.message) == (400, "unexpected end of JSON input")

    def test_bad_merge_patch_json_is_400(self, configmap_schema: SchemaNode) -> None:
        with pytest.raises(ApiError) as caught:
            apply_patch(
                "application/merge-patch+json", {}, b"{", configmap_schema, is_custom_resource=True
            )
        assert (caught.value.code, caught.value.message) == (400, "Invalid JSON Patch")
