"""How a running DeviceServer takes in a changed config: a rolled pod, or Init in place.

``Restart`` (the default; ``TANGO_OPERATOR_CONFIG_RELOAD``, the annotation
``tango.tango-controls.org/config-reload``) puts the config's hash on the pod template, so a
change rolls the pod. ``Init`` leaves the template alone and sends Init to the server's devices
once the DB is written. On kubeemu and the real control plane (``kube_api``), the stand-in
recording each Init; a real server re-reading its property after Init is the e2e test
``test_a_config_change_reaches_a_running_server_by_init_without_a_restart``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from kubernetes import client

from tango_operator import crd
from tests.support.crs import device_server
from tests.support.kube_api import KubeApi
from tests.support.operator import Operator, ds_key
from workers import rendering

JsonDict = dict[str, Any]
DEVICES = ("lab/live/1", "lab/live/2")


def _config(label: str) -> str:
    devices = {device: {"properties": {"label": [label]}} for device in DEVICES}
    return json.dumps({"servers": {"Motor": {"live": {"Motor": devices}}}})


def _template(kube_client: client.ApiClient) -> tuple[dict[str, str], int]:
    found = client.AppsV1Api(kube_client).read_namespaced_stateful_set("live", "default")
    return dict(found.spec.template.metadata.annotations or {}), int(found.metadata.generation)


def _reconfigure(operator: Operator, kube_client: client.ApiClient) -> None:
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "live",
        {"spec": {"config": _config("after")}},
    )  # fmt: skip
    operator.settle(ds_key("live"))


def _reasons(kube_client: client.ApiClient) -> set[str]:
    events = client.CoreV1Api(kube_client).list_namespaced_event(
        "default", field_selector="involvedObject.name=live"
    )
    return {event.reason for event in events.items}


def test_init_keeps_the_pod_and_sends_init_to_each_device(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    body = device_server("live", config=_config("before"))
    body["metadata"]["annotations"] = {crd.CONFIG_RELOAD_ANNOTATION: "Init"}
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", body
    )
    operator.settle(ds_key("live"))
    annotations, generation = _template(kube_client)
    assert rendering.CONFIG_HASH_ANNOTATION not in annotations
    assert operator.tango.inits == [], "a server that starts reads the DB by itself"

    _reconfigure(operator, kube_client)
    assert _template(kube_client) == (annotations, generation), "the pod template is unchanged"
    assert operator.tango.inits == [("Motor/live", DEVICES)]
    assert "ConfigReloaded" in _reasons(kube_client)

    # a device that cannot take Init: a Warning names it, the server runs on
    operator.tango.unexported.add("lab/live/2")
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "live",
        {"spec": {"config": _config("again")}},
    )  # fmt: skip
    operator.reconcile(ds_key("live"))
    assert "InitFailed" in _reasons(kube_client)


def test_restart_is_the_default_and_rolls_the_pod(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers",
        device_server("live", config=_config("before")),
    )  # fmt: skip
    operator.settle(ds_key("live"))
    before, generation = _template(kube_client)
    _reconfigure(operator, kube_client)
    after, rolled = _template(kube_client)
    assert after[rendering.CONFIG_HASH_ANNOTATION] != before[rendering.CONFIG_HASH_ANNOTATION]
    assert rolled == generation + 1
    assert operator.tango.inits == []


def test_the_setting_applies_when_the_annotation_is_absent(
    operator: Operator, kube_client: client.ApiClient
) -> None:
    operator.settings = dataclasses.replace(operator.settings, config_reload=crd.ConfigReload.INIT)
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers",
        device_server("live", config=_config("before")),
    )  # fmt: skip
    operator.settle(ds_key("live"))
    assert rendering.CONFIG_HASH_ANNOTATION not in _template(kube_client)[0]
    _reconfigure(operator, kube_client)
    assert operator.tango.inits == [("Motor/live", DEVICES)]
