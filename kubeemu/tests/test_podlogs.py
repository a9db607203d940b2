"""``pods/log`` (``kubeemu.podlogs``): options, container, kubelet location and errors, worded
as kube-apiserver 1.32 words them (the whole path, with real clients and a kubelet, is compared
with kube-apiserver by the repository's ``tests/parity`` scenario ``pod_logs``)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from kubeemu import errors, podlogs
from kubeemu.podlogs import LogOptions


def _status(call: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(errors.ApiError) as caught:
        call(*args)
    return caught.value.status()


def _options(**query: str) -> LogOptions:
    return LogOptions.decode(MultiDict(query))


def test_options_are_decoded_as_the_parameter_codec_does() -> None:
    assert _options() == LogOptions()
    decoded = _options(container="c", follow="", previous="FALSE", tailLines="+3", limitBytes="7")
    assert decoded == LogOptions(container="c", follow=True, tail_lines=3, limit_bytes=7)
    assert _options(follow="0", timestamps="yes").timestamps
    assert LogOptions.decode(MultiDict([("tailLines", "1"), ("tailLines", "x")])).tail_lines == 1
    with pytest.raises(errors.ApiError, match=r'parsing "ten": invalid syntax'):
        _options(tailLines="ten")
    with pytest.raises(errors.ApiError, match=r'parsing "1_0": invalid syntax'):
        _options(limitBytes="1_0")
    with pytest.raises(errors.ApiError, match="value out of range"):
        _options(sinceSeconds=str(2**63))


def test_since_time_is_rfc3339_and_forwarded_in_utc() -> None:
    assert _options(sinceTime="2026-01-02T03:04:05+01:00").since_time == "2026-01-02T02:04:05Z"
    assert _options(sinceTime="2026-01-02T03:04:05.5Z").since_time == "2026-01-02T03:04:05Z"
    layout = '"2006-01-02T15:04:05Z07:00"'
    cases = {
        "yesterday": f'parsing time "yesterday" as {layout}: cannot parse "yesterday" as "2006"',
        "2026-01-02": f'parsing time "2026-01-02" as {layout}: cannot parse "" as "T"',
        "2026-01-02T03:04:05Zx": 'parsing time "2026-01-02T03:04:05Zx": extra text: "x"',
        "2026-13-02T03:04:05Z": 'parsing time "2026-13-02T03:04:05Z": month out of range',
        "2026-04-31T03:04:05Z": 'parsing time "2026-04-31T03:04:05Z": day out of range',
    }
    for text, message in cases.items():
        with pytest.raises(errors.ApiError) as caught:
            _options(sinceTime=text)
        assert (caught.value.code, caught.value.message) == (400, message)


def test_validation_names_every_problem() -> None:
    LogOptions(tail_lines=0, limit_bytes=1, since_seconds=1).validate("p")
    with pytest.raises(errors.ApiError) as caught:
        LogOptions(tail_lines=-1, limit_bytes=0, since_seconds=0).validate("p")
    assert caught.value.code == 422
    assert caught.value.message == (
        'PodLogOptions "p" is invalid: [tailLines: Invalid value: -1: must be greater than or '
        "equal to 0, limitBytes: Invalid value: 0: must be greater than 0, sinceSeconds: Invalid "
        "value: 0: must be greater than 0]"
    )
    with pytest.raises(errors.ApiError) as both:
        LogOptions(since_seconds=0, since_time="2026-01-02T03:04:05Z").validate("p")
    assert both.value.status()["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            "field": "[]",
        }
    ]


def test_the_kubelet_gets_the_set_options_sorted_by_name() -> None:
    assert LogOptions(container="c").kubelet_query() == ""
    every = LogOptions(
        follow=True, previous=True, since_time="2026-01-02T03:04:05Z", timestamps=True,
        tail_lines=0, limit_bytes=9,
    )  # fmt: skip
    assert every.kubelet_query() == (
        "follow=true&limitBytes=9&previous=true&sinceTime=2026-01-02T03%3A04%3A05Z"
        "&tailLines=0&timestamps=true"
    )


def test_the_container_is_named_or_the_only_one() -> None:
    def pod(*containers: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": c} for c in containers]}
        spec["initContainers"] = [{"name": c} for c in init]
        return {"metadata": {"name": "p"}, "spec": spec}

    assert podlogs.container_of(pod("main"), "") == "main"
    assert podlogs.container_of(pod("a", "b", init=("setup",)), "setup") == "setup"
    several = _status(podlogs.container_of, pod("a", "b", init=("setup",)), "")
    assert several["message"] == (
        "a container name must be specified for pod p, choose one of: [setup a b]"
    )
    assert several["code"] == 400
    wrong = _status(podlogs.container_of, pod("main"), "other")
    assert wrong["message"] == "container other is not valid for pod p"


def test_the_kubelet_is_found_as_kube_apiserver_finds_it() -> None:
    def node(addresses: list[dict[str, str]], port: int | None) -> dict[str, Any]:
        endpoints = {} if port is None else {"kubeletEndpoint": {"Port": port}}
        return {"status": {"addresses": addresses, "daemonEndpoints": endpoints}}

    internal = {"type": "InternalIP", "address": "10.0.0.1"}
    hostname = {"type": "Hostname", "address": "node-1"}
    assert podlogs.kubelet_location(node([internal, hostname], 1234)) == ("node-1", 1234)
    assert podlogs.kubelet_location(node([internal], None)) == ("10.0.0.1", 10250)
    none = _status(podlogs.kubelet_location, node([{"type": "Other", "address": "x"}], 1))
    assert none == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "no preferred addresses found; known addresses: [{Other x}]",
        "code": 500,
    }


def test_kubelet_errors_become_kube_apiserver_statuses() -> None:
    bad = podlogs.kubelet_error(400, "waiting to start", "p").status()
    assert (bad["code"], bad["reason"], bad["message"]) == (400, "BadRequest", "waiting to start")
    assert "details" not in bad
    assert podlogs.kubelet_error(404, "no such pod", "p").status()["message"] == (
        "the server could not find the requested resource ( pods/log p)"
    )
    internal = podlogs.kubelet_error(500, "boom", "p").status()
    assert internal["message"] == "Internal error occurred: boom"
    assert internal["details"] == {"causes": [{"message": "boom"}]}
    teapot = podlogs.kubelet_error(418, "tea", "p").status()
    assert "reason" not in teapot
    assert teapot["details"] == {"name": "p", "kind": "pods/log"}
    assert podlogs.kubelet_error(403, "who are you", "p").message == "who are you ( pods/log p)"
    assert podlogs.kubelet_error(502, "gateway", "p").message == (
        'an error on the server ("gateway") has prevented the request from succeeding ( pods/log p)'
    )
