"""The real server's traffic records, on made-up audit events and injections.

kube-apiserver's audit events become the records ``tests.soak.traffic`` reads, the fault proxy's
injections join them, and the writes whose effect the audit log does not tell are decided from
resourceVersions.
"""

from __future__ import annotations

from typing import Any

from devstack.faultproxy import Injection
from tests.soak.servers import RECORD_FIELDS, audit_records, injected_record
from tests.soak.traffic import Traffic, is_mutation, settle_changes

JsonDict = dict[str, Any]
PROXY_USER = "admin-token"
AGENT = "OpenAPI-Generator/36.0.3/python"


def _event(audit_id: str, verb: str, *, stage: str = "ResponseComplete", **ref: str) -> JsonDict:
    return {
        "auditID": audit_id,
        "stage": stage,
        "verb": verb,
        "requestURI": f"/apis/apps/v1/namespaces/soak-00/statefulsets?watch={verb == 'watch'}",
        "user": {"username": PROXY_USER},
        "userAgent": AGENT,
        "objectRef": ref,
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-12-05T08:00:00.250000Z",
    }


def test_audit_events_become_one_record_per_request_of_the_proxys_user() -> None:
    watch = {"resource": "statefulsets", "namespace": "soak-00", "apiGroup": "apps"}
    events = [
        _event("a", "watch", stage="ResponseStarted", **watch),
        _event("b", "patch", resource="statefulsets", namespace="soak-00", name="srv-000"),
        _event("a", "watch", **watch),  # the same watch, ended
        {**_event("c", "list", resource="pods"), "user": {"username": "admin"}},  # a controller
        _event("d", "get", stage="RequestReceived", resource="leases"),
    ]
    records = audit_records(events, PROXY_USER)
    assert [(r["verb"], r["resource"], r["name"]) for r in records] == [
        ("watch", "statefulsets", ""),
        ("patch", "statefulsets", "srv-000"),
    ]
    first = records[0]
    assert set(first) == set(RECORD_FIELDS)
    assert first["time"] == 1796457600.25
    assert first["path"] == "/apis/apps/v1/namespaces/soak-00/statefulsets"
    assert (first["group"], first["code"], first["injected"], first["changed"]) == (
        "apps",
        200,
        "",
        None,
    )


def test_an_injection_is_a_record_of_its_fault() -> None:
    injection = Injection(
        time=5.0,
        method="PATCH",
        path="/apis/apps/v1/namespaces/soak-00/statefulsets/srv-000",
        verb="patch",
        resource="statefulsets",
        group="apps",
        namespace="soak-00",
        user_agent=AGENT,
        code=503,
    )
    record = injected_record(injection)
    assert set(record) == set(RECORD_FIELDS)
    assert (record["injected"], record["code"], record["changed"]) == ("503", 503, False)
    assert not is_mutation(record)
    assert Traffic.of([record]).injected() == {"503": 1}


def _write(verb: str, name: str, *, at: float = 10.0, code: int = 200) -> JsonDict:
    return {
        "time": at,
        "verb": verb,
        "group": "apps",
        "resource": "statefulsets",
        "namespace": "soak-00",
        "name": name,
        "code": code,
        "injected": "",
        "changed": None,
    }


def test_unknown_writes_count_until_the_versions_decide_them() -> None:
    before = {("apps", "statefulsets", "soak-00", n): "7" for n in ("same", "moved", "gone")}
    after = {
        ("apps", "statefulsets", "soak-00", "same"): "7",
        ("apps", "statefulsets", "soak-00", "moved"): "9",
        ("apps", "statefulsets", "soak-00", "new"): "8",
    }
    records = [
        _write("patch", "same"),  # a no-op apply
        _write("patch", "moved"),
        _write("patch", "new"),  # an apply that created
        _write("patch", "gone"),
        _write("patch", "same", code=409),
        _write("patch", "same", at=30.0),  # outside the window: stays unknown
        {**_write("update", "leader"), "group": "coordination.k8s.io", "resource": "leases"},
    ]
    assert [is_mutation(r) for r in records] == [True, True, True, True, False, True, True]
    assert settle_changes(records, before, after, 0.0, 20.0) == 5
    assert [r["changed"] for r in records] == [False, True, True, True, False, None, None]
    assert [is_mutation(r) for r in records] == [False, True, True, True, False, True, True]
