"""``meta.k8s.io/v1`` Table output: CRD printer columns, built-in printers, row objects.

Expectations follow the apiserver 1.31: the CRD table convertor (JSONPath cells, date cells as
ages, missing cells null), the default convertor (Name, Created At) and the built-in printers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubeemu import errors, jsonpath, printers, table, timefmt

JsonDict = dict[str, Any]

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
NAME_DESCRIPTION_START = "Name must be unique within a namespace."

WIDGET_COLUMNS: list[JsonDict] = [
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "How big."},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "priority": 1,
    },
    {"name": "First", "type": "string", "jsonPath": ".spec.items[0]"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def widget(name: str = "w1", **extra: Any) -> JsonDict:
    obj: JsonDict = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "42",
            "creationTimestamp": "2024-01-01T11:55:00Z",
        },
        "spec": {"size": 3, "items": ["a", "b"]},
        "status": {
            "state": "Running",
            "conditions": [
                {"type": "Progressing", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }
    obj.update(extra)
    return obj


def test_table_envelope_and_metadata() -> None:
    result = table.to_table(
        [widget()],
        columns=WIDGET_COLUMNS,
        list_metadata={"resourceVersion": "100", "continue": "tok", "remainingItemCount": 3},
        now=NOW,
    )

    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {
        "resourceVersion": "100",
        "continue": "tok",
        "remainingItemCount": 3,
    }


def test_crd_columns_start_with_name() -> None:
    definitions = table.to_table(
        [], columns=WIDGET_COLUMNS, list_metadata={"resourceVersion": "1"}, now=NOW
    )["columnDefinitions"]

    name = definitions[0]
    assert (name["name"], name["type"], name["format"], name["priority"]) == (
        "Name",
        "string",
        "name",
        0,
    )
    assert name["description"].startswith(NAME_DESCRIPTION_START)
    assert [d["name"] for d in definitions] == ["Name", "State", "Size", "Ready", "First", "Age"]
    assert definitions[1] == {
        "name": "State",
        "type": "string",
        "format": "",
        "description": "Custom resource definition column (in JSONPath format): .status.state",
        "priority": 0,
    }
    assert definitions[2]["description"] == "How big."
    assert definitions[3]["priority"] == 1


def test_crd_cells() -> None:
    rows = table.to_table([widget()], columns=WIDGET_COLUMNS, list_metadata={}, now=NOW)["rows"]

    assert rows[0]["cells"] == ["w1", "Running", 3, "True", "a", "5m"]


def test_missing_values_are_null_cells() -> None:
    obj = widget(status={})
    obj["spec"] = {}

    cells = table.to_table([obj], columns=WIDGET_COLUMNS, list_metadata={}, now=NOW)["rows"][0][
        "cells"
    ]

    assert cells == ["w1", None, None, None, None, "5m"]


def test_cell_types_follow_the_column_type() -> None:
    columns = [
        {"name": "AsInt", "type": "integer", "jsonPath": ".spec.ratio"},
        {"name": "AsNumber", "type": "number", "jsonPath": ".spec.size"},
        {"name": "Flag", "type": "boolean", "jsonPath": ".spec.flag"},
        {"name": "WrongType", "type": "integer", "jsonPath": ".spec.text"},
        {"name": "Object", "type": "string", "jsonPath": ".spec.map"},
        {"name": "Number", "type": "string", "jsonPath": ".spec.size"},
        {"name": "BadDate", "type": "date", "jsonPath": ".spec.text"},
    ]
    obj = widget()
    obj["spec"] = {"ratio": 2.7, "size": 3, "flag": True, "text": "x", "map": {"b": 1, "a": "z"}}

    cells = table.to_table([obj], columns=columns, list_metadata={}, now=NOW)["rows"][0]["cells"]

    assert cells == ["w1", 2, 3.0, True, None, '{"a":"z","b":1}', "3", "<invalid>"]


def test_no_printer_columns_means_name_and_age() -> None:
    result = table.to_table([widget()], columns=None, list_metadata={}, now=NOW)

    assert [(d["name"], d["type"]) for d in result["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert result["rows"][0]["cells"] == ["w1", "5m"]


def test_include_object_metadata_is_the_default() -> None:
    row = table.to_table([widget()], columns=None, list_metadata={}, now=NOW)["rows"][0]

    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": widget()["metadata"],
    }


def test_include_object_object_and_none() -> None:
    full = table.to_table(
        [widget()], columns=None, list_metadata={}, include_object="Object", now=NOW
    )
    assert full["rows"][0]["object"] == widget()

    bare = table.to_table(
        [widget()], columns=None, list_metadata={}, include_object="None", now=NOW
    )
    assert bare["rows"][0]["object"] is None


def test_unknown_include_object_is_a_bad_request() -> None:
    with pytest.raises(errors.ApiError) as caught:
        table.to_table([], columns=None, list_metadata={}, include_object="Everything")

    assert caught.value.code == 400
    assert caught.value.message == 'unrecognized includeObject value: "Everything"'


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (190, "3m10s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60 * 25, "3h25m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (3 * 365 * 86400 + 5 * 86400, "3y5d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, expected: str) -> None:
    assert timefmt.human_duration(seconds) == expected


def test_json_path_subset() -> None:
    obj = {"a": {"b": [{"k": "x", "v": 1}, {"k": "y", "v": 2}], "dotted.key": "d"}}

    assert jsonpath.evaluate(".a.b[1].v", obj) == [2]
    assert jsonpath.evaluate(".a.b[-1].k", obj) == ["y"]
    assert jsonpath.evaluate(".a.b[*].k", obj) == ["x", "y"]
    assert jsonpath.evaluate('.a.b[?(@.k=="y")].v', obj) == [2]
    assert jsonpath.evaluate(".a.b[?(@.v > 1)].k", obj) == ["y"]
    assert jsonpath.evaluate(".a['dotted.key']", obj) == ["d"]
    assert jsonpath.evaluate("{.a.missing}", obj) == []
    assert jsonpath.evaluate(".a.b[5]", obj) == []


# --- built-in printers ----------------------------------------------------------------------------
def cells_of(group: str, resource: str, obj: JsonDict) -> list[Any]:
    columns = printers.builtin_columns(group, resource)
    assert columns is not None
    result = table.to_table([obj], columns=columns, list_metadata={}, now=NOW)
    cells: list[Any] = result["rows"][0]["cells"]
    return cells


def names_of(group: str, resource: str) -> list[str]:
    columns = printers.builtin_columns(group, resource)
    assert columns is not None
    return [column.name for column in columns if column.priority == 0]


def test_unmodelled_builtin_has_no_columns() -> None:
    assert printers.builtin_columns("", "replicationcontrollers") is None


def test_pod_columns_and_cells() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "web-0", "creationTimestamp": "2024-01-01T10:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"finishedAt": "2024-01-01T11:58:00Z"}},
                },
            ],
        },
    }

    assert names_of("", "pods") == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert cells_of("", "pods", pod) == [
        "web-0",
        "1/2",
        "CrashLoopBackOff",
        "2 (2m ago)",
        "120m",
        "10.0.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_terminating_and_completed_pods() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T11:59:00Z"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running"},
    }
    assert cells_of("", "pods", pod)[2] == "Terminating"

    done = {"kind": "Pod", "metadata": {"name": "d"}, "spec": {}, "status": {"phase": "Succeeded"}}
    row = table.to_table(
        [done], columns=printers.builtin_columns("", "pods"), list_metadata={}, now=NOW
    )["rows"][0]
    assert row["cells"][2] == "Succeeded"
    assert row["cells"][4] == "<unknown>"
    assert row["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_statefulset_cells() -> None:
    sts = {
        "metadata": {"name": "db", "creationTimestamp": "2024-01-01T11:00:00Z"},
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
        },
        "status": {"readyReplicas": 2},
    }

    assert names_of("apps", "statefulsets") == ["Name", "Ready", "Age"]
    assert cells_of("apps", "statefulsets", sts) == ["db", "2/3", "60m", "db", "postgres:16"]


def test_service_cells() -> None:
    svc = {
        "metadata": {"name": "tango", "creationTimestamp": "2024-01-01T11:59:30Z"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 45450, "protocol": "TCP"}, {"port": 45460, "protocol": "TCP"}],
            "selector": {"app": "tango", "tier": "db"},
        },
    }
    node_port = {
        "metadata": {"name": "np"},
        "spec": {
            "type": "NodePort",
            "clusterIPs": ["10.96.0.11"],
            "ports": [{"port": 80, "nodePort": 30080}],
        },
    }
    balancer = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": []}}

    assert names_of("", "services") == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
    ]
    assert cells_of("", "services", svc) == [
        "tango",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "45450/TCP,45460/TCP",
        "30s",
        "app=tango,tier=db",
    ]
    assert cells_of("", "services", node_port)[4] == "80:30080/TCP"
    assert cells_of("", "services", balancer)[2:5] == ["<none>", "<pending>", "<none>"]


def test_configmap_namespace_lease_cells() -> None:
    created = {"creationTimestamp": "2024-01-01T11:00:00Z"}
    configmap = {
        "metadata": {"name": "cm", **created},
        "data": {"a": "1", "b": "2"},
        "binaryData": {"c": ""},
    }
    namespace = {"metadata": {"name": "ns", **created}, "status": {"phase": "Active"}}
    lease = {"metadata": {"name": "leader", **created}, "spec": {"holderIdentity": "pod-a"}}

    assert cells_of("", "configmaps", configmap) == ["cm", 3, "60m"]
    assert cells_of("", "namespaces", namespace) == ["ns", "Active", "60m"]
    assert cells_of("coordination.k8s.io", "leases", lease) == ["leader", "pod-a", "60m"]
    assert names_of("", "configmaps") == ["Name", "Data", "Age"]
    assert names_of("coordination.k8s.io", "leases") == ["Name", "Holder", "Age"]


def test_event_cells() -> None:
    event = {
        "metadata": {"name": "w.17a"},
        "involvedObject": {"kind": "Pod", "name": "web-0"},
        "reason": "Started",
        "type": "Normal",
        "message": " Started container \n",
        "firstTimestamp": "2024-01-01T11:50:00Z",
        "lastTimestamp": "2024-01-01T11:59:00Z",
        "count": 2,
        "source": {"component": "kubelet", "host": "node-1"},
    }

    assert names_of("", "events") == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert cells_of("", "events", event) == [
        "60s",
        "Normal",
        "Started",
        "pod/web-0",
        "",
        "kubelet, node-1",
        "Started container",
        "10m",
        2,
        "w.17a",
    ]


def test_crds_use_the_default_convertor() -> None:
    crd = {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-01-01T11:00:00Z"}}
    columns = printers.builtin_columns("apiextensions.k8s.io", "customresourcedefinitions")
    assert columns is not None

    result = table.to_table([crd], columns=columns, list_metadata={}, now=NOW)

    assert [(d["name"], d["type"]) for d in result["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert result["rows"][0]["cells"] == ["widgets.example.com", "2024-01-01T11:00:00Z"]
