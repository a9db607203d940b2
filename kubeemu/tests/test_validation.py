"""Metadata, immutability and Event validation, checked against the Kubernetes 1.31 texts.

Expected messages are upstream's (apimachinery ``util/validation`` and ``field.Error``), as
real clusters print them; they are written out here literally.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeemu import errors
from kubeemu.defaults import apply_builtin_defaults
from kubeemu.validation import (
    STATEFULSET_SPEC_FORBIDDEN,
    validate_event,
    validate_metadata,
    validate_update_immutable,
)

JsonDict = dict[str, Any]

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_PART_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def meta(**metadata: Any) -> JsonDict:
    return {"metadata": metadata}


def test_valid_metadata_has_no_causes() -> None:
    obj = meta(
        name="tango-db.v1",
        namespace="tango",
        labels={"app.kubernetes.io/name": "tango", "tier": "", "x_y.z": "A-1_b.c"},
        annotations={"Example.COM/Key": "anything at all"},
        finalizers=["tango.example.com/cleanup"],
    )
    assert validate_metadata(obj, kind="ConfigMap", group="", namespaced=True) == []


def test_bad_subdomain_name_has_upstream_message() -> None:
    causes = validate_metadata(
        meta(name="Bad_Name", namespace="ns"), kind="ConfigMap", group="", namespaced=True
    )
    assert causes == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "Bad_Name": {SUBDOMAIN_MESSAGE}')
    ]
    error = errors.invalid("ConfigMap", "", "Bad_Name", causes)
    assert error.message == (
        f'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        f"{SUBDOMAIN_MESSAGE}"
    )


def test_service_names_are_dns_1035_labels() -> None:
    causes = validate_metadata(
        meta(name="1-web", namespace="ns"), kind="Service", group="", namespaced=True
    )
    assert causes == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "1-web": {DNS1035_MESSAGE}')
    ]
    long_name = "a" * 64
    causes = validate_metadata(
        meta(name=long_name, namespace="ns"), kind="Service", group="", namespaced=True
    )
    assert causes == [
        (
            "metadata.name",
            "FieldValueInvalid",
            f'Invalid value: "{long_name}": must be no more than 63 characters',
        )
    ]


def test_namespace_names_are_dns_1123_labels() -> None:
    causes = validate_metadata(
        meta(name="tango.prod"), kind="Namespace", group="", namespaced=False
    )
    assert causes == [
        (
            "metadata.name",
            "FieldValueInvalid",
            f'Invalid value: "tango.prod": {DNS1123_LABEL_MESSAGE}',
        )
    ]


def test_a_dotted_name_is_fine_for_most_kinds_but_not_over_253() -> None:
    assert (
        validate_metadata(meta(name="a.b.c", namespace="n"), kind="Pod", group="", namespaced=True)
        == []
    )
    name = "a" * 254
    causes = validate_metadata(
        meta(name=name, namespace="n"), kind="Pod", group="", namespaced=True
    )
    assert [message for _, _, message in causes] == [
        f'Invalid value: "{name}": must be no more than 253 characters'
    ]


def test_rbac_names_may_contain_colons() -> None:
    obj = meta(name="system:tango-reader")
    assert (
        validate_metadata(
            obj, kind="ClusterRole", group="rbac.authorization.k8s.io", namespaced=False
        )
        == []
    )
    causes = validate_metadata(
        meta(name="a/b"), kind="ClusterRole", group="rbac.authorization.k8s.io", namespaced=False
    )
    assert causes == [
        ("metadata.name", "FieldValueInvalid", "Invalid value: \"a/b\": may not contain '/'")
    ]


def test_missing_name_and_namespace() -> None:
    causes = validate_metadata(meta(), kind="ConfigMap", group="", namespaced=True)
    assert causes == [
        ("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"),
        ("metadata.namespace", "FieldValueRequired", "Required value"),
    ]


def test_namespace_on_a_cluster_scoped_kind_is_forbidden() -> None:
    causes = validate_metadata(
        meta(name="n", namespace="x"), kind="Namespace", group="", namespaced=False
    )
    assert causes == [
        ("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type")
    ]


def test_generate_name_may_end_with_a_dash() -> None:
    obj = meta(name="web-x7k2p", generateName="web-", namespace="ns")
    assert validate_metadata(obj, kind="Pod", group="", namespaced=True) == []


def test_label_value_over_63_characters() -> None:
    value = "v" * 64
    causes = validate_metadata(
        meta(name="x", namespace="n", labels={"app": value}), kind="Pod", group="", namespaced=True
    )
    assert causes == [
        (
            "metadata.labels",
            "FieldValueInvalid",
            f'Invalid value: "{value}": must be no more than 63 characters',
        )
    ]


def test_bad_label_value_and_key() -> None:
    causes = validate_metadata(
        meta(name="x", namespace="n", labels={"bad key": "-bad"}),
        kind="Pod",
        group="",
        namespaced=True,
    )
    assert causes == [
        ("metadata.labels", "FieldValueInvalid", f'Invalid value: "bad key": {NAME_PART_MESSAGE}'),
        ("metadata.labels", "FieldValueInvalid", f'Invalid value: "-bad": {LABEL_VALUE_MESSAGE}'),
    ]


def test_label_key_prefix_must_be_a_subdomain() -> None:
    causes = validate_metadata(
        meta(name="x", namespace="n", labels={"Example.com/app": "a"}),
        kind="Pod",
        group="",
        namespaced=True,
    )
    assert causes == [
        (
            "metadata.labels",
            "FieldValueInvalid",
            f'Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MESSAGE}',
        )
    ]
    causes = validate_metadata(
        meta(name="x", namespace="n", labels={"a/b/c": "a"}), kind="Pod", group="", namespaced=True
    )
    assert len(causes) == 1
    assert (
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')" in causes[0][2]
    )


def test_annotations_total_size_limit() -> None:
    within = {"a": "x" * (256 * 1024 - 1)}
    assert (
        validate_metadata(
            meta(name="x", namespace="n", annotations=within),
            kind="ConfigMap",
            group="",
            namespaced=True,
        )
        == []
    )
    over = {"ab": "x" * (256 * 1024 - 1)}
    causes = validate_metadata(
        meta(name="x", namespace="n", annotations=over), kind="ConfigMap", group="", namespaced=True
    )
    assert causes == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes")
    ]


# --- immutability ---------------------------------------------------------------------------
def stateful_set(**spec: Any) -> JsonDict:
    base: JsonDict = {
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}},
    }
    base.update(spec)
    return apply_builtin_defaults("apps", "v1", "StatefulSet", {"spec": base})


def test_stateful_set_mutable_fields_may_change() -> None:
    old = stateful_set()
    new = stateful_set(
        replicas=3,
        minReadySeconds=5,
        updateStrategy={"type": "OnDelete"},
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"},
        template={"metadata": {"labels": {"app": "db", "v": "2"}}, "spec": {"containers": []}},
    )
    assert validate_update_immutable("StatefulSet", "apps", old, new) == []


@pytest.mark.parametrize(
    "change",
    [
        {"serviceName": "other"},
        {"revisionHistoryLimit": 3},
        {"podManagementPolicy": "Parallel"},
        {"selector": {"matchLabels": {"app": "db", "x": "y"}}},
        {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]},
    ],
)
def test_stateful_set_other_spec_fields_are_forbidden(change: JsonDict) -> None:
    causes = validate_update_immutable(
        "StatefulSet", "apps", stateful_set(), stateful_set(**change)
    )
    assert causes == [("spec", "FieldValueForbidden", f"Forbidden: {STATEFULSET_SPEC_FORBIDDEN}")]
    assert STATEFULSET_SPEC_FORBIDDEN == (
        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
        "forbidden"
    )


def test_deployment_selector_is_immutable_with_go_rendering() -> None:
    old = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    new = {"spec": {"selector": {"matchLabels": {"app": "web2"}}}}
    assert validate_update_immutable("Deployment", "apps", old, new) == [
        (
            "spec.selector",
            "FieldValueInvalid",
            'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, '
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        )
    ]
    assert validate_update_immutable("Deployment", "apps", old, old) == []


def test_service_cluster_ip_may_not_change_once_set() -> None:
    old = {"spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}
    changed = {"spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.10"]}}
    assert validate_update_immutable("Service", "", old, changed) == [
        (
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            'Invalid value: []string{"10.96.0.11"}: may not change once set',
        )
    ]
    omitted: JsonDict = {"spec": {"ports": [{"port": 80}]}}
    assert validate_update_immutable("Service", "", old, omitted) == []
    external = {"spec": {"type": "ExternalName", "externalName": "x.example"}}
    assert validate_update_immutable("Service", "", old, external) == []


def test_immutable_config_map() -> None:
    old = {"immutable": True, "data": {"a": "1"}}
    assert (
        validate_update_immutable("ConfigMap", "", old, {"immutable": True, "data": {"a": "1"}})
        == []
    )
    assert validate_update_immutable(
        "ConfigMap", "", old, {"data": {"a": "2"}, "binaryData": {"b": "AA=="}}
    ) == [
        (
            "immutable",
            "FieldValueForbidden",
            "Forbidden: field is immutable when `immutable` is set",
        ),
        ("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"),
        (
            "binaryData",
            "FieldValueForbidden",
            "Forbidden: field is immutable when `immutable` is set",
        ),
    ]
    mutable = {"data": {"a": "1"}}
    assert validate_update_immutable("ConfigMap", "", mutable, {"data": {"a": "2"}}) == []


def test_immutable_secret_counts_string_data_and_type_never_changes() -> None:
    old = {"immutable": True, "type": "Opaque", "data": {"k": "dg=="}}
    same_via_string_data = {"immutable": True, "type": "Opaque", "stringData": {"k": "v"}}
    assert validate_update_immutable("Secret", "", old, same_via_string_data) == []
    changed = {"immutable": True, "type": "Opaque", "stringData": {"k": "w"}}
    assert validate_update_immutable("Secret", "", old, changed) == [
        ("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")
    ]
    retyped = {"type": "kubernetes.io/tls", "data": {}}
    assert validate_update_immutable("Secret", "", {"type": "Opaque"}, retyped) == [
        ("type", "FieldValueInvalid", 'Invalid value: "kubernetes.io/tls": field is immutable')
    ]


# --- events ---------------------------------------------------------------------------------
def events_v1(**fields: Any) -> JsonDict:
    event: JsonDict = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "tango.17f0", "namespace": "tango"},
        "eventTime": "2024-08-01T10:00:05.000000Z",
        "reportingController": "tango.example.com/operator",
        "reportingInstance": "operator-0",
        "action": "Reconcile",
        "reason": "Created",
        "type": "Normal",
        "note": "created the StatefulSet",
        "regarding": {"kind": "StatefulSet", "name": "db", "namespace": "tango"},
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def test_valid_events_v1_event() -> None:
    assert validate_event(events_v1(), api_group="events.k8s.io") == []


def test_events_v1_without_event_time_or_type() -> None:
    causes = validate_event(events_v1(eventTime=None, type="Info"), api_group="events.k8s.io")
    assert causes == [
        ("eventTime", "FieldValueRequired", "Required value"),
        ("type", "FieldValueInvalid", 'Invalid value: "": has invalid value: Info'),
    ]


def test_events_v1_required_and_bounded_fields() -> None:
    causes = validate_event(
        events_v1(
            reportingController=None, reportingInstance="i" * 129, action=None, note="n" * 1025
        ),
        api_group="events.k8s.io",
    )
    assert causes == [
        ("reportingController", "FieldValueRequired", "Required value"),
        (
            "reportingController",
            "FieldValueInvalid",
            'Invalid value: "": name part must be non-empty',
        ),
        (
            "reportingController",
            "FieldValueInvalid",
            f'Invalid value: "": {NAME_PART_MESSAGE}',
        ),
        (
            "reportingInstance",
            "FieldValueInvalid",
            'Invalid value: "": can have at most 128 characters',
        ),
        ("action", "FieldValueRequired", "Required value"),
        ("message", "FieldValueInvalid", 'Invalid value: "": can have at most 1024 characters'),
    ]


def test_events_v1_legacy_fields_must_be_unset() -> None:
    causes = validate_event(
        events_v1(
            deprecatedCount=3,
            deprecatedFirstTimestamp="2024-08-01T10:00:00Z",
            deprecatedSource={"component": "x"},
        ),
        api_group="events.k8s.io",
    )
    assert causes == [
        ("firstTimestamp", "FieldValueInvalid", 'Invalid value: "": needs to be unset'),
        ("count", "FieldValueInvalid", 'Invalid value: "": needs to be unset'),
        ("source", "FieldValueInvalid", 'Invalid value: "": needs to be unset'),
    ]


def test_core_event_namespace_must_match() -> None:
    event: JsonDict = {
        "metadata": {"name": "db.17f0", "namespace": "tango"},
        "involvedObject": {"kind": "Pod", "name": "db-0", "namespace": "other"},
        "reason": "Started",
        "type": "Whatever",
    }
    assert validate_event(event, api_group="") == [
        (
            "involvedObject.namespace",
            "FieldValueInvalid",
            'Invalid value: "other": does not match event.namespace',
        )
    ]
    event["involvedObject"]["namespace"] = "tango"
    assert validate_event(event, api_group="") == []  # core/v1 checks neither type nor reason
