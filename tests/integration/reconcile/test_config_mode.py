"""Which configuration mode a DeviceServer's config is applied in, and how often.

The workers' setting (``TANGO_OPERATOR_CONFIG_MODE``, ``Settings.config_mode``) is the default;
the CR's annotation ``tango.tango-controls.org/config-mode`` overrides it. The mode is part of
what was applied (``status.configHash``): a changed mode is applied once, an unchanged document
and mode never again. Against kubeemu, with the stand-in TANGO side recording every apply (what
each mode writes is ``tests/integration/tango/test_config_modes.py``'s, on real TANGO).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from tango_operator import crd
from tango_operator.crd import ConfigMode
from tests.support.crs import device_server
from tests.support.operator import Operator, ds_key
from workers.settings import Settings

JsonDict = dict[str, Any]
UPDATE, DECLARATIVE = ConfigMode.UPDATE, ConfigMode.DECLARATIVE


def _create(kube_client: client.ApiClient, name: str, mode: str | None = None) -> None:
    config: JsonDict = {"servers": {"Motor": {name: {"Motor": {f"lab/{name}/1": {}}}}}}
    body = device_server(name, config=json.dumps(config))
    if mode is not None:
        body["metadata"]["annotations"] = {crd.CONFIG_MODE_ANNOTATION: mode}
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", body
    )


def _annotate(kube_client: client.ApiClient, name: str, mode: str | None) -> None:
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        "deviceservers",
        name,
        {"metadata": {"annotations": {crd.CONFIG_MODE_ANNOTATION: mode}}},
    )


def _status(kube_client: client.ApiClient, name: str) -> JsonDict:
    found: JsonDict = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", name
    )["status"]
    return found


def _modes(operator: Operator, name: str) -> list[ConfigMode]:
    return [mode for instance, mode in operator.tango.applies if instance == f"Motor/{name}"]


def test_the_setting_is_the_default_and_the_annotation_overrides_it(
    kube_client: client.ApiClient,
) -> None:
    operator = Operator(kube_client, settings=Settings(config_mode=DECLARATIVE))
    _create(kube_client, "plain")
    _create(kube_client, "annotated", "Update")
    operator.settle(ds_key("plain"), ds_key("annotated"))
    assert set(_modes(operator, "plain")) == {DECLARATIVE}
    assert set(_modes(operator, "annotated")) == {UPDATE}
    assert _status(kube_client, "plain")["configHash"].endswith("-Declarative")
    assert _status(kube_client, "annotated")["configHash"].endswith("-Update")
    assert Operator(kube_client).settings.config_mode == UPDATE, "Update unless set"


def test_a_changed_mode_is_applied_once_and_an_unchanged_one_never(
    kube_client: client.ApiClient, operator: Operator
) -> None:
    _create(kube_client, "switch")
    operator.settle(ds_key("switch"))
    first_hash = _status(kube_client, "switch")["configHash"]

    def three_reconciles() -> list[ConfigMode]:
        before = len(_modes(operator, "switch"))
        for _ in range(3):
            assert operator.reconcile(ds_key("switch")).state == "Running"
        return _modes(operator, "switch")[before:]

    assert three_reconciles() == [], "nothing changed"
    _annotate(kube_client, "switch", "Declarative")
    assert three_reconciles() == [DECLARATIVE]
    _annotate(kube_client, "switch", "Declarative")
    assert three_reconciles() == [], "the same mode again"
    _annotate(kube_client, "switch", None)
    assert three_reconciles() == [UPDATE], "the annotation removed: the setting's mode again"
    assert _status(kube_client, "switch")["configHash"] == first_hash
    assert operator.tango.writes == ["Motor/switch"], "the stand-in DB already matched"


def test_a_mode_that_is_not_one_is_an_error_naming_the_annotation(
    kube_client: client.ApiClient, operator: Operator
) -> None:
    _create(kube_client, "typo", "update")
    assert operator.reconcile(ds_key("typo")).state == "Error"
    message = _status(kube_client, "typo")["message"]
    assert message == (
        f"metadata.annotations[{crd.CONFIG_MODE_ANNOTATION}]: 'update' is not a configuration "
        "mode (expected Update or Declarative)"
    )
    assert operator.tango.applies == []
    _annotate(kube_client, "typo", "Update")
    operator.settle(ds_key("typo"))
    assert _modes(operator, "typo")[-1] == UPDATE
