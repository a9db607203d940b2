"""The CRDs in helm/tango-operator/crds.

What the API itself rejects, and no drift from tango_operator/crd.py (every key the parser reads is
in the schema, every spec key is read).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.stack import CRD_DIR
from tango_operator import crd
from tests.conftest import Cli

JsonDict = dict[str, Any]
API_SOURCE = Path(crd.__file__).read_text()


def _crd(plural: str) -> JsonDict:
    loaded: JsonDict = yaml.safe_load((CRD_DIR / f"{plural}.{crd.GROUP}.yaml").read_text())
    return loaded


def _spec_properties(plural: str) -> set[str]:
    """The spec keys of every served version (they must be the same at each)."""
    found = {
        version["name"]: set(
            version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        )
        for version in _crd(plural)["spec"]["versions"]
    }
    assert sorted(found) == ["v1", "v2"]
    assert found["v1"] == found["v2"]
    return found["v1"]


def _keys_read_by_parser(function: str) -> set[str]:
    start = API_SOURCE.index(f"def {function}(")
    end = API_SOURCE.find("\ndef ", start + 1)
    body = API_SOURCE[start:end]
    keys = set(re.findall(r'(?:_optional_str|_required_str)\(spec, "([A-Za-z]+)"\)', body))
    keys |= set(re.findall(r'spec\.get\("([A-Za-z]+)"', body))
    keys |= set(re.findall(r'spec\["([A-Za-z]+)"\]', body))
    return keys


def test_device_server_schema_and_parser_agree() -> None:
    read = _keys_read_by_parser("parse_device_server") | set(crd.POD_PASSTHROUGH_KEYS)
    assert read == _spec_properties("deviceservers")


def test_database_ds_schema_and_parser_agree() -> None:
    assert _keys_read_by_parser("parse_database_ds") == _spec_properties("databaseds")


def _apply(kubectl: Cli, tmp_path: Path, resource: JsonDict) -> tuple[int, str]:
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(resource))
    result = kubectl.run("apply", "-f", str(path), check=False)
    return result.returncode, result.stderr


def _device_server(**spec: Any) -> JsonDict:
    body = {"dsname": "TangoTest", "args": "test", "databaseds": "db", "image": "x"}
    body.update(spec)
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": "t"},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dsname": None}, "spec.dsname: Required value"),
        ({"args": None}, "spec.args: Required value"),
        ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy: Unsupported value"),
        ({"dependsOn": ["not a device"]}, "spec.dependsOn[0]: Invalid value"),
        ({"dependsOn": ["a/b/c/d"]}, "spec.dependsOn[0]: Invalid value"),
        ({"legacycompatibility": "yes"}, "spec.legacycompatibility: Invalid value"),
        ({"env": [{"value": "no name"}]}, "spec.env[0].name: Required value"),
    ],
)
def test_the_api_rejects_what_the_schema_can(
    kube_client: client.ApiClient, kubectl: Cli, tmp_path: Path, spec: JsonDict, message: str
) -> None:
    code, stderr = _apply(kubectl, tmp_path, _device_server(**spec))
    assert code != 0
    assert message in stderr


def test_resources_null_and_defaults(
    kube_client: client.ApiClient, kubectl: Cli, tmp_path: Path
) -> None:
    code, stderr = _apply(
        kubectl,
        tmp_path,
        _device_server(
            command="/bin/x", resources=None, dependsOn=["tango://db.example:10000/a/b/c", "h:1"]
        ),
    )
    assert code == 0, stderr
    stored = json.loads(kubectl.run("get", "deviceserver", "t", "-o", "json").stdout)
    assert stored["spec"]["clusterDomain"] == "cluster.local"
    assert stored["spec"]["legacycompatibility"] is True
    assert stored["spec"].get("resources") is None  # kept as null or dropped by kubectl


def test_status_state_is_an_enum(
    kube_client: client.ApiClient, kubectl: Cli, tmp_path: Path
) -> None:
    _apply(kubectl, tmp_path, _device_server(command="/bin/x"))
    custom = client.CustomObjectsApi(kube_client)
    with pytest.raises(client.ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            crd.GROUP, crd.VERSION, "default", "deviceservers", "t", {"status": {"state": "Happy"}}
        )
    assert caught.value.status == 422
    assert "status.state: Unsupported value" in json.loads(caught.value.body)["message"]


def test_wide_printer_columns(kube_client: client.ApiClient, kubectl: Cli, tmp_path: Path) -> None:
    _apply(kubectl, tmp_path, _device_server(command="/bin/x"))
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object_status(
        crd.GROUP,
        crd.VERSION,
        "default",
        "deviceservers",
        "t",
        {
            "status": {
                "state": "Waiting",
                "waitingFor": ["lab/power/1"],
                "message": "waiting",
                "tangoHost": "db.default.svc.cluster.local:10000",
            }
        },
    )
    lines = kubectl.run("get", "tds", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "READY",
        "REASON",
        "DEVICES",
        "RESTARTS",
        "AGE",
        "WAITING",
        "FOR",
        "TANGO",
        "HOST",
        "MESSAGE",
    ]
    assert "lab/power/1" in lines[1]
    assert "db.default.svc.cluster.local:10000" in lines[1]
