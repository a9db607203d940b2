"""Label and field selectors: the grammar, the matching and upstream's 400 texts."""

from __future__ import annotations

import pytest

from kubeemu.errors import ApiError
from kubeemu.selectors import (
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    supported_field_labels,
)

WEB = {"app": "web", "tier": "frontend", "env": "prod"}
DB = {"app": "db", "tier": "backend"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("text", "web", "db", "bare"),
    [
        ("", True, True, True),
        ("app=web", True, False, False),
        ("app==web", True, False, False),
        ("app!=web", False, True, True),
        ("app in (web, db)", True, True, False),
        ("app in (db)", False, True, False),
        ("app notin (web,db)", False, False, True),
        ("env", True, False, False),
        ("!env", False, True, True),
        ("app=web,tier=frontend", True, False, False),
        ("app=web,tier=backend", False, False, False),
        ("  app  =  web ,  env  ", True, False, False),
        ("tier in (frontend,backend),!env", False, True, False),
        ("app=", False, False, False),
        ("app in (,db)", False, True, False),
    ],
)
def test_label_selector_matching(text: str, web: bool, db: bool, bare: bool) -> None:
    selector = parse_label_selector(text)
    assert (selector.matches(WEB), selector.matches(DB), selector.matches(BARE)) == (web, db, bare)


def test_empty_value_matches_an_empty_label() -> None:
    assert parse_label_selector("app=").matches({"app": ""})


def test_numeric_comparisons() -> None:
    assert parse_label_selector("replicas>2").matches({"replicas": "3"})
    assert not parse_label_selector("replicas<2").matches({"replicas": "3"})
    assert not parse_label_selector("replicas>2").matches({"replicas": "many"})


def test_in_and_notin_are_plain_values_after_an_operator() -> None:
    assert parse_label_selector("mode=in").matches({"mode": "in"})
    assert parse_label_selector("mode in (notin)").matches({"mode": "notin"})


def bad_request(text: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    return caught.value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app in web", "unable to parse requirement: found 'web' expected: '('"),
        ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
        (
            "app ~ web",
            "unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("app=web,", "found '', expected: identifier after ','"),
        ("app=web web", "found 'web', expected: ',' or 'end of string'"),
        ("=web", "found '=', expected: !, identifier, or 'end of string'"),
        ("app=(web)", "unable to parse requirement: found '(', expected: identifier"),
        ("app in ()x", "found 'x', expected: ',' or 'end of string'"),
    ],
)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    assert bad_request(text).message == message


def test_an_operator_without_a_value_means_the_empty_value() -> None:
    assert parse_label_selector("app==").matches({"app": ""})
    assert parse_label_selector("app in ()").matches({"app": ""})


def test_label_selector_bad_key_names_the_nil_path_like_upstream() -> None:
    error = bad_request("bad key!=x")
    assert error.message == (
        "unable to parse requirement: found 'key', expected: in, notin, =, ==, !=, gt, lt"
    )
    error = bad_request("-app=x")
    assert error.message == (
        'unable to parse requirement: <nil>: Invalid value: "-app": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )


def test_label_selector_bad_value() -> None:
    error = bad_request("app=-web")
    assert error.message.startswith(
        'unable to parse requirement: values[0][app]: Invalid value: "-web": '
    )


def test_label_selector_from_dict() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(WEB)
    assert not selector.matches({**WEB, "canary": "true"})
    assert not selector.matches(DB)
    assert label_selector_from_dict({}).matches(BARE)
    assert not label_selector_from_dict(None).matches(WEB)
    with pytest.raises(ValueError, match='"Near" is not a valid label selector operator'):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Near"}]})


# --- field selectors ------------------------------------------------------------------------
POD = {
    "metadata": {"name": "db-0", "namespace": "tango"},
    "spec": {"nodeName": "node-1", "restartPolicy": "Always"},
    "status": {"phase": "Running"},
}
PODS = supported_field_labels("", "pods")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=db-0", True),
        ("metadata.name==db-0", True),
        ("metadata.name!=db-0", False),
        ("metadata.namespace=tango,status.phase=Running", True),
        ("spec.nodeName=node-2", False),
        ("spec.nodeName!=node-2", True),
        ("status.podIP=", True),
        ("spec.hostNetwork=false", True),
        ("", True),
    ],
)
def test_field_selector_matching(text: str, expected: bool) -> None:
    assert parse_field_selector(text, allowed=PODS).matches(POD) is expected


def test_unsupported_field_label() -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.foo=bar", allowed=PODS)
    assert caught.value.code == 400
    assert caught.value.message == "field label not supported: spec.foo"


def test_unsupported_field_label_on_a_kind_without_its_own_labels() -> None:
    allowed = supported_field_labels("apps", "statefulsets")
    assert allowed == frozenset({"metadata.name", "metadata.namespace"})
    with pytest.raises(ApiError) as caught:
        parse_field_selector(
            "spec.replicas=1", allowed=allowed, group="apps", resource="statefulsets"
        )
    assert caught.value.message == (
        '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_field_selector_syntax_errors() -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector("metadata.name", allowed=PODS)
    assert (
        caught.value.message
        == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    )
    with pytest.raises(ApiError) as caught:
        parse_field_selector("metadata.name=a=b", allowed=PODS)
    assert caught.value.message == "invalid field selector: unescaped character in value: 61"


def test_field_selector_escapes() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b", allowed=PODS)
    assert selector.matches({"metadata": {"name": "a,b"}})
    assert selector.required_value("metadata.name") == "a,b"


def test_supported_field_labels_per_resource() -> None:
    assert {"spec.nodeName", "status.phase", "spec.serviceAccountName"} <= PODS
    events = supported_field_labels("", "events")
    assert {"involvedObject.name", "involvedObject.uid", "reason", "type", "source"} <= events
    assert supported_field_labels("", "secrets") == frozenset(
        {"metadata.name", "metadata.namespace", "type"}
    )
    assert "status.phase" in supported_field_labels("", "namespaces")
    assert supported_field_labels("", "configmaps") == frozenset(
        {"metadata.name", "metadata.namespace"}
    )


def test_event_source_matches_the_component() -> None:
    event = {"metadata": {"name": "e"}, "source": {"component": "kubelet"}, "type": "Warning"}
    allowed = supported_field_labels("", "events")
    assert parse_field_selector("source=kubelet,type=Warning", allowed=allowed).matches(event)
