"""Custom resources against a CRD's structural schema: pruning, defaulting, validation, CRDs.

Expected paths, reasons and messages are the apiserver's (apiextensions-apiserver pruning and
defaulting, kube-openapi validation errors mapped to field errors, Kubernetes 1.31).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeemu import crds, schema_validation, structural
from kubeemu.schema import builtin_schema, crd_schema

JsonDict = dict[str, Any]

WIDGET_SCHEMA: JsonDict = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": True},
                "startAt": {"type": "string", "format": "date-time"},
                "ratio": {"type": "number", "maximum": 1000000},
                "note": {"type": "string", "nullable": True},
                "tags": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "protocol": {"type": "string", "default": "TCP"},
                        },
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "limits": {
                    "type": "object",
                    "default": {},
                    "properties": {"cpu": {"type": "string", "default": "100m"}},
                },
                "replicas": {"type": "integer", "default": 1},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


@pytest.fixture
def schema() -> Any:
    return crd_schema(WIDGET_SCHEMA)


def widget(**spec: Any) -> JsonDict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"size": 2, **spec},
    }


# --- pruning -------------------------------------------------------------------------------------
def test_prune_drops_unknown_fields_and_reports_their_paths(schema: Any) -> None:
    obj = widget(foo=1, ports=[{"name": "http", "bogus": True}])
    obj["extra"] = "x"

    pruned, dropped = structural.prune(obj, schema)

    assert dropped == ["spec.foo", "spec.ports[0].bogus", "extra"]
    assert pruned["spec"] == {"size": 2, "ports": [{"name": "http"}]}
    assert "extra" not in pruned
    assert obj["spec"]["foo"] == 1, "the input must not be mutated"


def test_unknown_field_message_is_the_strict_decoding_text() -> None:
    assert structural.unknown_field_message("spec.foo") == 'unknown field "spec.foo"'
    assert structural.unknown_field_message(".spec.foo") == 'unknown field "spec.foo"'


def test_prune_keeps_root_type_meta_and_prunes_metadata_to_object_meta(schema: Any) -> None:
    obj = widget()
    obj["metadata"].update(
        {
            "labels": {"app": "w"},
            "annotations": {"a": "b"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u", "junk": 1}
            ],
            "managedFields": [
                {"manager": "m", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}}
            ],
            "notAMetaField": True,
        }
    )

    pruned, dropped = structural.prune(obj, schema)

    assert dropped == ["metadata.ownerReferences[0].junk", "metadata.notAMetaField"]
    assert pruned["apiVersion"] == "example.com/v1"
    assert pruned["kind"] == "Widget"
    assert pruned["metadata"]["labels"] == {"app": "w"}
    assert pruned["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {"f:size": {}}}


def test_preserve_unknown_fields_keeps_everything_below(schema: Any) -> None:
    obj = widget(config={"anything": {"deep": [1, 2]}}, labels={"free": "form"})

    pruned, dropped = structural.prune(obj, schema)

    assert dropped == []
    assert pruned["spec"]["config"] == {"anything": {"deep": [1, 2]}}
    assert pruned["spec"]["labels"] == {"free": "form"}


def test_preserve_unknown_fields_still_prunes_specified_properties() -> None:
    node = crd_schema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "inner": {"type": "object", "properties": {"a": {"type": "string"}}}
                    },
                }
            },
        }
    )
    obj = {"spec": {"free": 1, "inner": {"a": "x", "b": "y"}}}

    pruned, dropped = structural.prune(obj, node)

    assert dropped == ["spec.inner.b"]
    assert pruned["spec"] == {"free": 1, "inner": {"a": "x"}}


def test_embedded_resource_keeps_api_version_kind_and_metadata(schema: Any) -> None:
    template = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bad": 1}, "spec": {}}

    pruned, dropped = structural.prune(widget(template=template), schema)

    assert pruned["spec"]["template"]["apiVersion"] == "v1"
    assert pruned["spec"]["template"]["metadata"] == {"name": "p"}
    assert dropped == ["spec.template.metadata.bad"]


def test_object_without_properties_prunes_all_its_keys() -> None:
    node = crd_schema({"type": "object", "properties": {"spec": {"type": "object"}}})

    pruned, dropped = structural.prune({"spec": {"a": 1}}, node)

    assert pruned == {"spec": {}}
    assert dropped == ["spec.a"]


def test_non_nullable_nulls_without_default_are_dropped(schema: Any) -> None:
    obj = widget(name=None, note=None, mode=None)

    result = structural.drop_non_nullable_nulls(obj, schema)

    assert "name" not in result["spec"], "non-nullable, no default: dropped"
    assert result["spec"]["note"] is None, "nullable: kept"
    assert result["spec"]["mode"] is None, "has a default: left for defaulting"


# --- defaulting ----------------------------------------------------------------------------------
def test_defaults_apply_where_the_parent_exists(schema: Any) -> None:
    result = structural.apply_defaults(
        widget(ports=[{"name": "a"}, {"name": "b", "protocol": "UDP"}]), schema
    )

    spec = result["spec"]
    assert spec["mode"] == "fast"
    assert spec["replicas"] == 1
    assert spec["ports"] == [{"name": "a", "protocol": "TCP"}, {"name": "b", "protocol": "UDP"}]
    assert spec["limits"] == {"cpu": "100m"}, "a defaulted object is defaulted further"
    assert "status" not in result, "no parent, no default"


def test_defaults_do_not_overwrite_values_and_replace_non_nullable_null(schema: Any) -> None:
    result = structural.apply_defaults(widget(mode="slow", replicas=None), schema)

    assert result["spec"]["mode"] == "slow"
    assert result["spec"]["replicas"] == 1


def test_prune_and_default_is_prune_then_default(schema: Any) -> None:
    obj, dropped = structural.prune_and_default(widget(junk=1, name=None), schema)

    assert dropped == ["spec.junk"]
    assert "name" not in obj["spec"]
    assert obj["spec"]["mode"] == "fast"


def test_a_stored_object_is_decoded_in_place_under_the_current_schema(schema: Any) -> None:
    stored = widget(junk=1, name=None)

    decoded = structural.decode_stored(stored, schema)

    assert decoded is stored
    assert "junk" not in decoded["spec"], "pruned"
    assert "name" not in decoded["spec"], "a null the schema does not admit is dropped"
    assert decoded["spec"]["mode"] == "fast", "defaulted"


# --- validation ----------------------------------------------------------------------------------
def test_valid_object_has_no_causes(schema: Any) -> None:
    obj = widget(name="abc", port="http", startAt="2024-05-01T10:00:00Z", tags=["a", "b"])
    assert schema_validation.validate(obj, schema) == []


def test_type_error(schema: Any) -> None:
    causes = schema_validation.validate(widget(size="big"), schema)

    assert causes == [
        (
            "spec.size",
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        )
    ]


def test_integral_float_is_an_integer_and_int_is_a_number(schema: Any) -> None:
    assert schema_validation.validate(widget(size=3.0, ratio=2), schema) == []


def test_required(schema: Any) -> None:
    obj = widget()
    del obj["spec"]["size"]

    assert schema_validation.validate(obj, schema) == [
        ("spec.size", "FieldValueRequired", "Required value")
    ]


def test_enum(schema: Any) -> None:
    assert schema_validation.validate(widget(mode="turbo"), schema) == [
        (
            "spec.mode",
            "FieldValueNotSupported",
            'Unsupported value: "turbo": supported values: "fast", "slow"',
        )
    ]


def test_minimum_and_maximum(schema: Any) -> None:
    assert schema_validation.validate(widget(size=0), schema) == [
        (
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        )
    ]
    assert schema_validation.validate(widget(size=11), schema) == [
        (
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 11: spec.size in body should be less than or equal to 10",
        )
    ]


def test_float_values_print_like_go(schema: Any) -> None:
    assert schema_validation.validate(widget(ratio=2500000.5), schema) == [
        (
            "spec.ratio",
            "FieldValueInvalid",
            "Invalid value: 2.5000005e+06: "
            "spec.ratio in body should be less than or equal to 1e+06",
        )
    ]


def test_string_length_and_pattern(schema: Any) -> None:
    assert schema_validation.validate(widget(name="abcdef"), schema) == [
        ("spec.name", "FieldValueTooLong", "Too long: may not be longer than 5")
    ]
    assert schema_validation.validate(widget(name="ab"), schema) == [
        (
            "spec.name",
            "FieldValueInvalid",
            'Invalid value: "ab": spec.name in body should be at least 3 chars long',
        )
    ]
    assert schema_validation.validate(widget(name="AbC"), schema) == [
        (
            "spec.name",
            "FieldValueInvalid",
            "Invalid value: \"AbC\": spec.name in body should match '^[a-z]+$'",
        )
    ]


def test_items_count(schema: Any) -> None:
    assert schema_validation.validate(widget(tags=[]), schema) == [
        (
            "spec.tags",
            "FieldValueInvalid",
            "Invalid value: 0: spec.tags in body should have at least 1 items",
        )
    ]
    assert schema_validation.validate(widget(tags=["a", "b", "c", "d"]), schema) == [
        ("spec.tags", "FieldValueTooMany", "Too many: 4: must have at most 3 items")
    ]


def test_item_errors_carry_the_index(schema: Any) -> None:
    assert schema_validation.validate(widget(tags=["a", 5]), schema) == [
        (
            "spec.tags[1]",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"',
        )
    ]


def test_date_time_format(schema: Any) -> None:
    assert schema_validation.validate(widget(startAt="2024-05-01T10:00:00.123+02:00"), schema) == []
    assert schema_validation.validate(widget(startAt="yesterday"), schema) == [
        (
            "spec.startAt",
            "FieldValueTypeInvalid",
            'Invalid value: "yesterday": spec.startAt in body must be of type date-time: '
            '"yesterday"',
        )
    ]


def test_int_or_string(schema: Any) -> None:
    assert schema_validation.validate(widget(port=8080), schema) == []
    assert schema_validation.validate(widget(port="http"), schema) == []
    assert schema_validation.validate(widget(port=True), schema) == [
        (
            "spec.port",
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
        )
    ]


def test_null_where_not_nullable_is_a_type_error(schema: Any) -> None:
    assert schema_validation.validate(widget(note=None), schema) == []
    assert schema_validation.validate(widget(tags=[None]), schema) == [
        (
            "spec.tags[0]",
            "FieldValueTypeInvalid",
            'Invalid value: "null": spec.tags[0] in body must be of type string: "null"',
        )
    ]


def test_additional_properties_values_are_validated(schema: Any) -> None:
    assert schema_validation.validate(widget(labels={"a": 1}), schema) == [
        (
            "spec.labels.a",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
        )
    ]


def test_set_duplicates(schema: Any) -> None:
    assert schema_validation.validate(widget(tags=["a", "b", "a"]), schema) == [
        ("spec.tags[2]", "FieldValueDuplicate", 'Duplicate value: "a"')
    ]


def test_map_key_duplicates(schema: Any) -> None:
    obj = widget(ports=[{"name": "http"}, {"name": "http", "protocol": "UDP"}])

    assert schema_validation.validate(obj, schema) == [
        (
            "spec.ports[1]",
            "FieldValueDuplicate",
            'Duplicate value: map[string]interface {}{"name":"http"}',
        )
    ]


def test_embedded_resource_needs_api_version_and_kind(schema: Any) -> None:
    causes = schema_validation.validate(widget(template={"metadata": {"name": "x"}}), schema)

    assert causes == [
        ("spec.template.apiVersion", "FieldValueRequired", "Required value: must not be empty"),
        ("spec.template.kind", "FieldValueRequired", "Required value: must not be empty"),
    ]


def test_several_causes_are_all_reported(schema: Any) -> None:
    fields = {cause[0] for cause in schema_validation.validate(widget(size=99, mode="x"), schema)}
    assert fields == {"spec.size", "spec.mode"}


def test_a_null_bad_value_prints_as_the_quoted_string_null() -> None:
    """Go's field.Error (1.31) replaces a nil bad value with the string "null" before %q."""
    enum_schema = crd_schema(
        {
            "type": "object",
            "properties": {"mode": {"type": "string", "nullable": True, "enum": ["a", "b"]}},
        }
    )

    causes = schema_validation.validate({"mode": None}, enum_schema)

    assert causes == [
        ("mode", "FieldValueNotSupported", 'Unsupported value: "null": supported values: "a", "b"')
    ]


# --- CRDs ----------------------------------------------------------------------------------------
def widget_crd() -> JsonDict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(WIDGET_SCHEMA)},
                }
            ],
        },
    }


def test_valid_crd() -> None:
    assert crds.validate_crd(widget_crd()) == []


def test_crd_name_must_be_plural_dot_group() -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = "widget.example.com"

    assert crds.validate_crd(crd) == [
        (
            "metadata.name",
            "FieldValueInvalid",
            'Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group',
        )
    ]


def test_crd_scope_and_names() -> None:
    crd = widget_crd()
    crd["spec"]["scope"] = "Global"
    del crd["spec"]["names"]["kind"]

    causes = crds.validate_crd(crd)

    assert (
        "spec.scope",
        "FieldValueNotSupported",
        'Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
    ) in causes
    assert ("spec.names.kind", "FieldValueRequired", "Required value") in causes


def test_crd_needs_exactly_one_storage_version() -> None:
    crd = widget_crd()
    crd["spec"]["versions"].append(copy.deepcopy(crd["spec"]["versions"][0]) | {"name": "v2"})

    causes = crds.validate_crd(crd)

    assert [(field, reason) for field, reason, _ in causes] == [
        ("spec.versions", "FieldValueInvalid")
    ]
    assert causes[0][2].endswith(": must have exactly one version marked as storage version")


def test_crd_versions_need_a_schema() -> None:
    crd = widget_crd()
    del crd["spec"]["versions"][0]["schema"]

    assert crds.validate_crd(crd) == [
        (
            "spec.versions[0].schema.openAPIV3Schema",
            "FieldValueRequired",
            "Required value: schemas are required",
        )
    ]


def test_crd_without_versions() -> None:
    crd = widget_crd()
    crd["spec"]["versions"] = []

    assert (
        "spec.versions",
        "FieldValueRequired",
        "Required value: must have at least one version",
    ) in (crds.validate_crd(crd))


def test_established_status() -> None:
    status = crds.established_crd_status(widget_crd(), now="2024-01-01T00:00:00Z")

    assert status == {
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "acceptedNames": {
            "plural": "widgets",
            "singular": "widget",
            "shortNames": ["wd"],
            "kind": "Widget",
            "listKind": "WidgetList",
        },
        "storedVersions": ["v1"],
    }


def test_stored_versions_accumulate() -> None:
    crd = widget_crd()
    crd["status"] = {"storedVersions": ["v1alpha1"]}

    assert crds.established_crd_status(crd)["storedVersions"] == ["v1alpha1", "v1"]


def test_default_crd_fills_names_and_conversion() -> None:
    spec = crds.default_crd(widget_crd())["spec"]

    assert spec["names"]["singular"] == "widget"
    assert spec["names"]["listKind"] == "WidgetList"
    assert spec["conversion"] == {"strategy": "None"}


def test_default_crd_in_place_keeps_a_given_conversion() -> None:
    crd = widget_crd()
    crd["spec"]["conversion"] = {"strategy": "Webhook"}

    assert crds.default_crd(crd, copy=False) is crd
    assert crd["spec"]["conversion"] == {"strategy": "Webhook"}


def test_a_stored_version_stays_in_spec_versions() -> None:
    crd = widget_crd()
    crd["status"] = {"storedVersions": ["v1alpha1", "v1"]}

    assert crds.validate_crd_stored_versions(crd) == [
        (
            "status.storedVersions[0]",
            "FieldValueInvalid",
            'Invalid value: "v1alpha1": must appear in spec.versions',
        )
    ]


def test_version_schema_is_the_custom_resource_schema() -> None:
    node = crds.version_schema(widget_crd(), "v1")

    assert node.has_property("spec")
    assert node.has_property("metadata")


def test_builtin_kinds_are_pruned_like_their_go_types() -> None:
    crd_kind = builtin_schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["tpye"] = "x"
    crd["spec"]["bogus"] = 1

    pruned, dropped = structural.prune(crd, crd_kind)

    assert dropped == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.tpye",
        "spec.bogus",
    ]
    tags = pruned["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["tags"]
    assert tags["items"] == {"type": "string"}, "JSONSchemaPropsOrArray is opaque"
