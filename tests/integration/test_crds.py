"""The CRDs of helm/tango-operator/crds: what the API accepts, rejects, defaults and shows.

Two halves. The static half reads the CRD YAML and tango_operator/crd.py and checks that they cannot
drift apart: the spec keys the parser reads are exactly the schema's, the schema's defaults are
the parser's, and the schema's patterns accept what the parser accepts. The served half installs
the CRDs on kubeemu with the real kubectl, applies the SKA-rendered sample CRs from
tests/data/crs unchanged, and drives rejections, status and printer columns through kubectl and
the official Python client.
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
from tests.conftest import ROOT, Cli
from tests.integration.conftest import crd_names
from workers.reconcile.status import Condition, now_rfc3339

JsonDict = dict[str, Any]
SAMPLES = ROOT / "tests" / "data" / "crs"
API_SOURCE = Path(crd.__file__).read_text()
NAMESPACE = "default"


# --- reading the CRDs -----------------------------------------------------------------------------
def _crd(kind: crd.Kind) -> JsonDict:
    loaded: JsonDict = yaml.safe_load((CRD_DIR / f"{kind.plural}.{crd.GROUP}.yaml").read_text())
    return loaded


def _version(kind: crd.Kind, name: str = crd.VERSION) -> JsonDict:
    """One version of a CRD (by default the operator's: the storage version)."""
    versions: list[JsonDict] = _crd(kind)["spec"]["versions"]
    (version,) = [v for v in versions if v["name"] == name]
    return version


def _schema(kind: crd.Kind) -> JsonDict:
    schema: JsonDict = _version(kind)["schema"]["openAPIV3Schema"]
    return schema


def _spec_schema(kind: crd.Kind) -> JsonDict:
    spec: JsonDict = _schema(kind)["properties"]["spec"]
    return spec


def _spec_defaults(kind: crd.Kind) -> JsonDict:
    properties: JsonDict = _spec_schema(kind)["properties"]
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


def _accepts(prop: JsonDict, value: str) -> bool:
    """Whether a string passes the string checks of a schema node (as the apiserver runs them)."""
    if len(value) < prop.get("minLength", 0) or len(value) > prop.get("maxLength", len(value)):
        return False
    pattern = prop.get("pattern")
    return pattern is None or re.search(pattern, value) is not None


# --- the CRDs as files ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "singular", "short_names", "states"),
    [
        (
            crd.Kind.DEVICE_SERVER,
            "deviceserver",
            ["tds", "tangods"],
            ["Building", "Waiting", "Pending", "Running", "Error"],
        ),
        (crd.Kind.DATABASE_DS, "databaseds", ["tdb"], ["Building", "Running", "Error"]),
    ],
)
def test_crd_identity(
    kind: crd.Kind, singular: str, short_names: list[str], states: list[str]
) -> None:
    definition = _crd(kind)
    assert definition["apiVersion"] == "apiextensions.k8s.io/v1"
    assert definition["metadata"]["name"] == f"{kind.plural}.{crd.GROUP}"
    spec = definition["spec"]
    assert (spec["group"], spec["scope"]) == (crd.GROUP, "Namespaced")
    assert spec["names"] == {
        "kind": kind.value,
        "listKind": f"{kind.value}List",
        "plural": kind.plural,
        "singular": singular,
        "shortNames": short_names,
        "categories": ["tango"],
    }
    assert spec["conversion"] == {"strategy": "None"}, "the versions' schemas are equal"
    served = {v["name"]: (v["served"], v["storage"], v["subresources"]) for v in spec["versions"]}
    assert served == {
        "v1": (True, True, {"status": {}}),  # the storage version, the one the operator uses
        "v2": (True, False, {"status": {}}),
    }
    assert crd.VERSION == "v1"
    assert _schema(kind)["properties"]["status"]["properties"]["state"]["enum"] == states
    assert "{{" not in (CRD_DIR / f"{kind.plural}.{crd.GROUP}.yaml").read_text(), "no templating"


@pytest.mark.parametrize("kind", list(crd.Kind))
def test_every_version_has_the_same_schema_and_columns(kind: crd.Kind) -> None:
    """v2 is v1 under another name: no conversion, and every check of v1's schema holds for v2.

    The file says so with YAML aliases; this keeps it true if someone writes a copy instead.
    """
    versions = _crd(kind)["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1", "v2"], "v1 first: versions[0] is the storage"
    first, *others = versions
    for other in others:
        for key in ("schema", "additionalPrinterColumns", "subresources"):
            assert other[key] == first[key], f"{other['name']}.{key} differs from v1's"


def _walk(node: JsonDict, path: str) -> list[tuple[str, JsonDict]]:
    found = [(path, node)]
    for name, child in (node.get("properties") or {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", list(crd.Kind))
def test_every_field_is_described_for_kubectl_explain(kind: crd.Kind) -> None:
    undescribed = [
        path
        for path, node in _walk(_schema(kind), kind.value)
        if path != f"{kind.value}.metadata"
        and not path.endswith("[]")  # kubectl explain shows the array's own description
        and not node.get("description")
    ]
    assert undescribed == []


# --- no drift between the CRDs and tango_operator/crd.py ------------------------------------
def _parser_body(function: str) -> str:
    start = API_SOURCE.index(f"def {function}(")
    end = API_SOURCE.find("\ndef ", start + 1)
    return API_SOURCE[start:end]


def _keys_read_by(function: str) -> set[str]:
    body = _parser_body(function)
    keys = set(re.findall(r'_(?:optional|required)_str\(spec, "(\w+)"\)', body))
    keys |= set(re.findall(r'spec\.get\("(\w+)"', body))
    keys |= set(re.findall(r'spec\["(\w+)"\]', body))
    return keys


def test_device_server_schema_has_exactly_the_keys_the_parser_reads() -> None:
    read = _keys_read_by("parse_device_server")
    assert "POD_PASSTHROUGH_KEYS" in _parser_body("parse_device_server")
    read |= set(crd.POD_PASSTHROUGH_KEYS)
    spec = _spec_schema(crd.Kind.DEVICE_SERVER)
    assert set(spec["properties"]) == read
    required = set(
        re.findall(r'_required_str\(spec, "(\w+)"\)', _parser_body("parse_device_server"))
    )
    assert set(spec["required"]) == required == {"dsname", "args", "databaseds", "image"}


def test_database_ds_schema_has_exactly_the_keys_the_parser_reads() -> None:
    spec = _spec_schema(crd.Kind.DATABASE_DS)
    assert set(spec["properties"]) == _keys_read_by("parse_database_ds")
    assert "required" not in spec


def test_schema_defaults_are_the_parser_defaults() -> None:
    minimal = {
        "dsname": "TangoTest",
        "args": "test",
        "command": "/usr/local/bin/TangoTest",
        "databaseds": "databaseds-tango-base",
        "image": "tango-test:1",
    }
    defaults = _spec_defaults(crd.Kind.DEVICE_SERVER)
    assert defaults == {
        "clusterDomain": crd.DEFAULT_CLUSTER_DOMAIN,
        "legacycompatibility": True,
        "enableLoadBalancer": False,
    }
    metadata = {"name": "tangotest-test"}
    assert crd.parse_device_server(
        {"metadata": metadata, "spec": minimal}
    ) == crd.parse_device_server({"metadata": metadata, "spec": {**minimal, **defaults}})

    db_defaults = _spec_defaults(crd.Kind.DATABASE_DS)
    assert set(db_defaults) == {"clusterDomain", "usePV", "enableLoadBalancer", "storageSize"}
    db_metadata = {"name": "databaseds-tango-base"}
    assert crd.parse_database_ds({"metadata": db_metadata, "spec": {}}) == crd.parse_database_ds(
        {"metadata": db_metadata, "spec": db_defaults}
    )


def _parser_accepts_dependency(text: str) -> bool:
    try:
        crd.parse_dependency(text, "spec.dependsOn[0]")
    except crd.SpecError:
        return False
    return True


DEPENDENCIES_BOTH_ACCEPT = [
    "sys/tg_test/1",
    "sys/database/2",
    "  sys/database/2 ",
    "SYS/TG_TEST/1",
    "lab-a.b/power_supply/1.2",
    "tango://db.example.org:10000/sys/tg_test/1",
    "tango://10.0.0.1:10000/a/b/c",
    "tango-databaseds-db:3306",
    "databaseds-tango-base-tangodb.ns.svc.cluster.local:3306",
    "10.0.0.1:80",
    "h:1",
]
DEPENDENCIES_BOTH_REJECT = [
    "not a device",
    "a/b/c/d",
    "a/b",
    "sys/tg_test/",
    "/a/b/c",
    "a b/c/d",
    "a:b/c/d",
    "a/b:c/d",
    "sys/tg_test/1:x",
    "tango://host:10000/a/b/c:d",
    "host",
    "host:",
    ":80",
    "-host:80",
    "host-:80",
    "under_score:80",
    "host:http",
    "tango://host/a/b/c",
    "tango://host:10000/a/b",
    "tango://host:10000/a/b/c/d",
    "http://host:80/a/b/c",
    "",
]


def test_dependency_pattern_accepts_what_the_parser_accepts() -> None:
    pattern = _spec_schema(crd.Kind.DEVICE_SERVER)["properties"]["dependsOn"]["items"]
    for text in DEPENDENCIES_BOTH_ACCEPT:
        assert (_accepts(pattern, text), _parser_accepts_dependency(text)) == (True, True), text
    for text in DEPENDENCIES_BOTH_REJECT:
        assert (_accepts(pattern, text), _parser_accepts_dependency(text)) == (False, False), text
    # the one thing left to the parser (state Error): a port out of range
    for text in ("h:0", "h:65536"):
        assert (_accepts(pattern, text), _parser_accepts_dependency(text)) == (True, False), text


def _parser_rejects_field(key: str, value: str) -> bool:
    spec = {
        "dsname": "TangoTest",
        "args": "test",
        "command": "/bin/x",
        "databaseds": "db",
        "image": "x",
        key: value,
    }
    try:
        crd.parse_device_server({"metadata": {"name": "t"}, "spec": spec})
    except crd.SpecError as exc:
        return exc.field == f"spec.{key}"
    return False


NAME_CASES: dict[str, tuple[list[str], list[str]]] = {
    "dsname": (
        ["TangoTest", "ska_tmc-leaf.node+1", "_private", "1", "D" * 85],
        ["../etc", "Tango Test", "-x", ".x", "a/b", "a:b", " ", "D" * 86, "Tängo"],
    ),
    "args": (
        ["test", "ps1", "ps-2", "a-b_c.d", "Test:1", "x" * 85, "#1", "a(b)[c]{d}"],
        ["a/b", "a b", "a\tb", " ", "ünïcødé", "x" * 86, "it's", "50%", 'a"b', "a;b", "a*b"],
    ),
    "databaseds": (
        ["databaseds-tango-base", "tango-host.other-ns.svc.cluster.local", "db:10000", "x" * 63],
        ["Upper", "under_score", "db:", "db:port", "-db", "db-", "a..b", "db.", " "],
    ),
    "clusterDomain": (
        ["cluster.local", "techops.internal.skao.int", "a"],
        ["bad domain", "Cluster.Local", "a..b", "-a", "a-", "a_b", "a." + "b" * 260],
    ),
}


@pytest.mark.parametrize("key", sorted(NAME_CASES))
def test_name_patterns_agree_with_the_parser(key: str) -> None:
    prop = _spec_schema(crd.Kind.DEVICE_SERVER)["properties"][key]
    good, bad = NAME_CASES[key]
    for value in good:
        assert (_accepts(prop, value), _parser_rejects_field(key, value)) == (True, False), value
    for value in bad:
        assert (_accepts(prop, value), _parser_rejects_field(key, value)) == (False, True), value


def test_an_over_long_databaseds_label_is_left_to_the_parser() -> None:
    """The schema accepts it so the operator can say why it cannot work (state Error)."""
    prop = _spec_schema(crd.Kind.DEVICE_SERVER)["properties"]["databaseds"]
    assert _accepts(prop, "x" * 70)
    assert _parser_rejects_field("databaseds", "x" * 70)


# --- served by kubeemu: install, samples, defaults ------------------------------------------------
def test_crds_are_established_and_their_names_accepted(
    kubectl: Cli, crds_installed: list[str]
) -> None:
    assert crds_installed == sorted(f"{kind.plural}.{crd.GROUP}" for kind in crd.Kind)
    assert crds_installed == crd_names()
    for kind in crd.Kind:
        stored = json.loads(
            kubectl.run("get", "crd", f"{kind.plural}.{crd.GROUP}", "-o", "json").stdout
        )
        conditions = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
        assert conditions["Established"] == conditions["NamesAccepted"] == "True"
        assert stored["status"]["acceptedNames"] == _crd(kind)["spec"]["names"]


def test_short_names_clash_with_no_other_resource(kubectl: Cli, crds_installed: list[str]) -> None:
    rows = kubectl.run("api-resources", "--no-headers").stdout.splitlines()
    by_name: dict[str, set[str]] = {}
    for row in rows:
        fields = row.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
        if len(fields) == 5:
            by_name[fields[0]] = set(fields[1].split(","))
    ours = by_name.pop("deviceservers") | by_name.pop("databaseds")
    assert ours == {"tds", "tangods", "tdb"}
    others = set().union(*by_name.values())
    assert "ds" in others, "daemonsets keep ds"
    assert ours.isdisjoint(others)
    assert "No resources found" in kubectl.run("get", "tds").stderr


def _load(sample: str) -> JsonDict:
    loaded: JsonDict = yaml.safe_load((SAMPLES / sample).read_text())
    return loaded


@pytest.mark.parametrize(
    "sample", ["ska-tangotest.yaml", "ska-databaseds.yaml", "python-server.yaml"]
)
@pytest.mark.parametrize("mode", ["client-side", "server-side"])
def test_samples_are_accepted_unchanged_and_read_back_equal(
    kubectl: Cli, crds_installed: list[str], sample: str, mode: str
) -> None:
    resource = _load(sample)
    kind = crd.Kind(resource["kind"])
    path = str(SAMPLES / sample)
    flags = ["--server-side"] if mode == "server-side" else []
    applied = kubectl.run("apply", *flags, "-f", path)
    assert "unknown field" not in applied.stderr
    assert applied.stderr == ""

    name = resource["metadata"]["name"]
    stored = json.loads(kubectl.run("get", kind.plural, name, "-o", "json").stdout)
    given = {key: value for key, value in resource["spec"].items() if value is not None}
    expected = {**_spec_defaults(kind), **given}
    # a null (resources: null) is dropped by kubectl's client-side apply, kept by server-side
    assert {key: value for key, value in stored["spec"].items() if value is not None} == expected
    for key in set(resource["spec"]) - set(given):
        assert stored["spec"].get(key) is None
    assert stored["metadata"]["labels"] == resource["metadata"]["labels"]
    assert "status" not in stored

    again = kubectl.run("apply", *flags, "-f", path)
    assert again.stderr == ""
    if mode == "client-side":
        assert again.stdout.strip().endswith("unchanged")
    restored = json.loads(kubectl.run("get", kind.plural, name, "-o", "json").stdout)
    rv = stored["metadata"]["resourceVersion"]
    assert restored["metadata"]["resourceVersion"] == rv


def test_the_samples_are_what_the_brief_describes() -> None:
    tangotest = _load("ska-tangotest.yaml")["spec"]
    assert tangotest["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    python_server = _load("python-server.yaml")
    spec = crd.parse_device_server(python_server)
    assert "resources" in python_server["spec"]
    assert python_server["spec"]["resources"] is None
    assert spec.script is not None
    assert "tango.server.run" in spec.script
    assert spec.command is None
    assert spec.config is not None
    assert spec.config.ignored_instances == ("PowerSupply/ps2",)
    assert len(spec.devices) > 1
    assert "classes" in spec.config.document
    assert [d.is_device for d in spec.depends_on] == [True, False]
    assert spec.pod["env"]
    crd.parse_database_ds(_load("ska-databaseds.yaml"))


def _custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _device_server(name: str = "t", **spec: Any) -> JsonDict:
    body: JsonDict = {
        "dsname": "TangoTest",
        "args": "test",
        "command": "/usr/local/bin/TangoTest",
        "databaseds": "databaseds-tango-base",
        "image": "tango-test:1",
    }
    body.update(spec)
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.Kind.DEVICE_SERVER.value,
        "metadata": {"name": name},
        "spec": {key: value for key, value in body.items() if value != "<absent>"},
    }


def _database_ds(name: str = "db", **spec: Any) -> JsonDict:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.Kind.DATABASE_DS.value,
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(api_client: client.ApiClient, resource: JsonDict) -> JsonDict:
    kind = crd.Kind(resource["kind"])
    created: JsonDict = _custom(api_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, NAMESPACE, kind.plural, resource
    )
    return created


def test_null_resources_are_kept_and_null_defaults_filled(crd_api_client: client.ApiClient) -> None:
    created = _create(
        crd_api_client,
        _device_server(resources=None, legacycompatibility=None, securityContext=None),
    )
    spec = created["spec"]
    assert "resources" in spec
    assert spec["resources"] is None
    assert spec["securityContext"] is None
    assert spec["legacycompatibility"] is True, "a null with a default gets the default"
    assert spec["clusterDomain"] == "cluster.local"
    assert spec["enableLoadBalancer"] is False
    assert crd.parse_device_server(created).legacy_compatibility is True

    db = _create(crd_api_client, _database_ds(databasedsResources=None))
    assert db["spec"] == {
        "clusterDomain": "cluster.local",
        "usePV": False,
        "enableLoadBalancer": False,
        "storageSize": "1Gi",
        "databasedsResources": None,
    }


# --- rejections -----------------------------------------------------------------------------------
def _rejection(api_client: client.ApiClient, resource: JsonDict) -> JsonDict:
    with pytest.raises(client.ApiException) as caught:
        _create(api_client, resource)
    assert caught.value.status == 422
    body: JsonDict = json.loads(caught.value.body)
    assert body["reason"] == "Invalid"
    return body


DS_REJECTIONS: list[tuple[JsonDict, str, str]] = [
    ({"dsname": "<absent>"}, "spec.dsname", "Required value"),
    ({"args": "<absent>"}, "spec.args", "Required value"),
    ({"databaseds": "<absent>"}, "spec.databaseds", "Required value"),
    ({"image": "<absent>"}, "spec.image", "Required value"),
    ({"image": ""}, "spec.image", "should be at least 1 chars long"),
    ({"dsname": "../etc"}, "spec.dsname", "should match"),
    ({"args": "a/b"}, "spec.args", "should match"),
    ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy", "Unsupported value"),
    ({"dependsOn": ["sys/tg_test/1", "not a device"]}, "spec.dependsOn[1]", "should match"),
    ({"dependsOn": ["a/b/c/d"]}, "spec.dependsOn[0]", "should match"),
    ({"dependsOn": "sys/tg_test/1"}, "spec.dependsOn", "must be of type array"),
    ({"dsname": 5}, "spec.dsname", "must be of type string"),
    ({"legacycompatibility": "yes"}, "spec.legacycompatibility", "must be of type boolean"),
    ({"enableLoadBalancer": 1}, "spec.enableLoadBalancer", "must be of type boolean"),
    ({"env": {"A": "1"}}, "spec.env", "must be of type array"),
    ({"env": [{"value": "no name"}]}, "spec.env[0].name", "Required value"),
    ({"volumeMounts": [{"name": "v"}]}, "spec.volumeMounts[0].mountPath", "Required value"),
    ({"resources": "big"}, "spec.resources", "must be of type object"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu", "should match"),
    ({"nodeSelector": {"zone": 1}}, "spec.nodeSelector.zone", "must be of type string"),
    ({"tolerations": [{"operator": "Maybe"}]}, "spec.tolerations[0].operator", "Unsupported"),
    ({"clusterDomain": "bad domain"}, "spec.clusterDomain", "should match"),
    ({"databaseds": "Upper_Case"}, "spec.databaseds", "should match"),
    ({"config": {"servers": {}}}, "spec.config", "must be of type string"),
]


@pytest.mark.parametrize(("spec", "field", "detail"), DS_REJECTIONS)
def test_device_server_rejections_name_the_field(
    crd_api_client_shared: client.ApiClient, spec: JsonDict, field: str, detail: str
) -> None:
    body = _rejection(crd_api_client_shared, _device_server(**spec))
    causes = {cause["field"]: cause["message"] for cause in body["details"]["causes"]}
    assert list(causes) == [field]
    assert detail in causes[field]
    assert f"{field}: " in body["message"]


def test_every_problem_is_reported_at_once(crd_api_client_shared: client.ApiClient) -> None:
    body = _rejection(
        crd_api_client_shared,
        _device_server(dsname="<absent>", args="<absent>", imagePullPolicy="Sometimes"),
    )
    fields = {cause["field"] for cause in body["details"]["causes"]}
    assert fields == {"spec.dsname", "spec.args", "spec.imagePullPolicy"}


def test_a_device_server_needs_a_spec(crd_api_client_shared: client.ApiClient) -> None:
    resource = _device_server()
    del resource["spec"]
    body = _rejection(crd_api_client_shared, resource)
    assert [cause["field"] for cause in body["details"]["causes"]] == ["spec"]


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        ({"usePV": "no"}, "spec.usePV", "must be of type boolean"),
        ({"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy", "Unsupported value"),
        ({"storageSize": "lots"}, "spec.storageSize", "should match"),
        ({"storageSize": 10}, "spec.storageSize", "must be of type string"),
        ({"credentialsSecret": "Bad_Name"}, "spec.credentialsSecret", "should match"),
        (
            {"tangoDBResources": {"requests": {"memory": "1 GB"}}},
            "spec.tangoDBResources.requests.memory",
            "should match",
        ),
        ({"databasedsImage": ""}, "spec.databasedsImage", "should be at least 1 chars long"),
    ],
)
def test_database_ds_rejections_name_the_field(
    crd_api_client_shared: client.ApiClient, spec: JsonDict, field: str, detail: str
) -> None:
    body = _rejection(crd_api_client_shared, _database_ds(**spec))
    causes = {cause["field"]: cause["message"] for cause in body["details"]["causes"]}
    assert list(causes) == [field]
    assert detail in causes[field]


def test_kubectl_reports_unknown_fields_instead_of_dropping_them(
    kubectl: Cli, crds_installed: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(_device_server(dependOn=["sys/tg_test/1"])))
    result = kubectl.run("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.dependOn"' in result.stderr
    # without strict validation the field is pruned, and kubectl says so
    result = kubectl.run("apply", "--validate=warn", "-f", str(path))
    assert 'unknown field "spec.dependOn"' in result.stderr
    stored = json.loads(kubectl.run("get", "tds", "t", "-o", "json").stdout)
    assert "dependOn" not in stored["spec"]


# --- status ---------------------------------------------------------------------------------------
def _patch_status(
    api_client: client.ApiClient, kind: crd.Kind, name: str, status: JsonDict
) -> JsonDict:
    patched: JsonDict = _custom(api_client).patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, NAMESPACE, kind.plural, name, {"status": status}
    )
    return patched


def _status_rejection(
    api_client: client.ApiClient, kind: crd.Kind, name: str, status: JsonDict
) -> JsonDict:
    with pytest.raises(client.ApiException) as caught:
        _patch_status(api_client, kind, name, status)
    assert caught.value.status == 422
    body: JsonDict = json.loads(caught.value.body)
    return body


def test_status_state_is_an_enum_per_kind(crd_api_client: client.ApiClient) -> None:
    _create(crd_api_client, _device_server())
    _create(crd_api_client, _database_ds())
    for state in ("Building", "Waiting", "Pending", "Running", "Error"):
        patched = _patch_status(crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"state": state})
        assert patched["status"]["state"] == state
    for state in ("Building", "Running", "Error"):
        patched = _patch_status(crd_api_client, crd.Kind.DATABASE_DS, "db", {"state": state})
        assert patched["status"]["state"] == state
    body = _status_rejection(crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"state": "Happy"})
    assert [c["field"] for c in body["details"]["causes"]] == ["status.state"]
    assert "status.state: Unsupported value" in body["message"]
    body = _status_rejection(crd_api_client, crd.Kind.DATABASE_DS, "db", {"state": "Waiting"})
    assert [c["field"] for c in body["details"]["causes"]] == ["status.state"]


def test_conditions_as_the_operator_writes_them(crd_api_client: client.ApiClient) -> None:
    _create(crd_api_client, _device_server())
    now = now_rfc3339()
    conditions = [
        Condition("Ready", False, "DependenciesNotReady", "waiting for sys/tg_test/1"),
        Condition("DependenciesReady", False, "DependenciesNotReady", ""),
        Condition("ConfigApplied", True, "Applied", "1 device(s) configured"),
    ]
    status = {
        "state": "Waiting",
        "message": "waiting for sys/tg_test/1",
        "observedGeneration": 1,
        "conditions": [c.as_dict(1, now) for c in conditions],
        "waitingFor": ["sys/tg_test/1"],
        "tangoHost": "databaseds-tango-base.default.svc.cluster.local:10000",
        "configHash": "0" * 64,
        "devices": ["sys/tg_test/1"],
        "replicas": 0,
        "readyReplicas": 0,
    }
    patched = _patch_status(crd_api_client, crd.Kind.DEVICE_SERVER, "t", status)
    assert patched["status"] == status, "nothing pruned: every field the operator writes is known"

    bad_reason = {**conditions[0].as_dict(1, now), "reason": "not camel case"}
    body = _status_rejection(
        crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"conditions": [bad_reason]}
    )
    assert [c["field"] for c in body["details"]["causes"]] == ["status.conditions[0].reason"]
    untimed = {k: v for k, v in conditions[0].as_dict(1, now).items() if k != "lastTransitionTime"}
    body = _status_rejection(crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"conditions": [untimed]})
    assert [c["field"] for c in body["details"]["causes"]] == [
        "status.conditions[0].lastTransitionTime"
    ]
    twice = [conditions[0].as_dict(1, now), conditions[0].as_dict(1, now)]
    body = _status_rejection(crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"conditions": twice})
    assert [c["field"] for c in body["details"]["causes"]] == ["status.conditions[1]"]


def test_status_is_a_subresource(crd_api_client: client.ApiClient) -> None:
    _create(crd_api_client, _device_server())
    custom = _custom(crd_api_client)
    plural = crd.Kind.DEVICE_SERVER.plural
    main = custom.patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        NAMESPACE,
        plural,
        "t",
        {"metadata": {"labels": {"a": "b"}}, "status": {"state": "Running"}},
    )
    assert "status" not in main, "the main resource ignores status"
    status = _patch_status(crd_api_client, crd.Kind.DEVICE_SERVER, "t", {"state": "Building"})
    assert status["metadata"]["generation"] == main["metadata"]["generation"] == 1
    spec_via_status = custom.patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, NAMESPACE, plural, "t", {"spec": {"args": "changed"}}
    )
    assert spec_via_status["spec"]["args"] == "test", "the status subresource ignores spec"


# --- what kubectl shows ---------------------------------------------------------------------------
def _table(output: str) -> list[dict[str, str]]:
    """Rows of a kubectl table, cut at the header's column offsets (cells may be empty)."""
    header, *rows = output.splitlines()
    names = re.split(r"\s{2,}", header.strip())
    starts: list[int] = []
    for name in names:
        starts.append(header.index(name, starts[-1] if starts else 0))
    ends = [*starts[1:], None]
    return [
        {name: row[start:end].strip() for name, start, end in zip(names, starts, ends, strict=True)}
        for row in rows
    ]


def test_printer_columns(kubectl: Cli, crd_api_client: client.ApiClient) -> None:
    _create(crd_api_client, _device_server("waiter"))
    _create(crd_api_client, _device_server("fresh"))
    _create(crd_api_client, _database_ds("databaseds-tango-base"))
    now = now_rfc3339()
    tango_host = "databaseds-tango-base.default.svc.cluster.local:10000"
    _patch_status(
        crd_api_client,
        crd.Kind.DEVICE_SERVER,
        "waiter",
        {
            "state": "Waiting",
            "message": "waiting for sys/tg_test/1, db:3306",
            "waitingFor": ["sys/tg_test/1", "db:3306"],
            "tangoHost": tango_host,
            "conditions": [
                Condition("Ready", False, "DependenciesNotReady", "waiting").as_dict(1, now)
            ],
        },
    )
    _patch_status(
        crd_api_client,
        crd.Kind.DATABASE_DS,
        "databaseds-tango-base",
        {
            "state": "Running",
            "message": "DataBaseds answers",
            "tangoHost": tango_host,
            "conditions": [Condition("Ready", True, "Running", "").as_dict(1, now)],
        },
    )

    _create(crd_api_client, _device_server("runner"))
    _patch_status(
        crd_api_client,
        crd.Kind.DEVICE_SERVER,
        "runner",
        {
            "state": "Running",
            "message": "device server running",
            "deviceSummary": "2/3 ON, 1 FAULT",
            "deviceHealth": [
                {"name": "lab/m/3", "exported": True, "state": "FAULT", "status": "no power"},
                {"name": "lab/m/1", "exported": True, "state": "ON", "status": "ok"},
                {"name": "lab/m/2", "exported": True, "state": "ON", "status": "ok"},
            ],
            "conditions": [Condition("Ready", True, "Running", "").as_dict(1, now)],
        },
    )

    narrow = _table(kubectl.run("get", "deviceservers").stdout)
    assert [list(row) for row in narrow] == [
        ["NAME", "STATE", "READY", "REASON", "DEVICES", "AGE"]
    ] * 3
    rows = {row["NAME"]: row for row in narrow}
    assert rows["runner"]["DEVICES"] == "2/3 ON, 1 FAULT"
    assert rows["waiter"]["DEVICES"] == ""
    assert (rows["waiter"]["STATE"], rows["waiter"]["READY"]) == ("Waiting", "False")
    assert rows["waiter"]["REASON"] == "DependenciesNotReady"
    assert (rows["fresh"]["STATE"], rows["fresh"]["READY"]) == ("", "")
    assert re.fullmatch(r"\d+s", rows["waiter"]["AGE"])

    wide = {row["NAME"]: row for row in _table(kubectl.run("get", "tds", "-o", "wide").stdout)}
    assert list(wide["waiter"]) == [
        "NAME",
        "STATE",
        "READY",
        "REASON",
        "DEVICES",
        "RESTARTS",
        "AGE",
        "WAITING FOR",
        "TANGO HOST",
        "MESSAGE",
    ]
    assert json.loads(wide["waiter"]["WAITING FOR"]) == ["sys/tg_test/1", "db:3306"]
    assert wide["waiter"]["TANGO HOST"] == tango_host
    assert wide["waiter"]["MESSAGE"] == "waiting for sys/tg_test/1, db:3306"

    db = _table(kubectl.run("get", "tdb", "-o", "wide").stdout)
    assert db == [
        {
            "NAME": "databaseds-tango-base",
            "STATE": "Running",
            "READY": "True",
            "AGE": db[0]["AGE"],
            "TANGO HOST": tango_host,
            "MESSAGE": "DataBaseds answers",
        }
    ]
    both = kubectl.run("get", "tango", "-o", "name").stdout.split()
    assert sorted(both) == [
        f"databaseds.{crd.GROUP}/databaseds-tango-base",
        f"deviceserver.{crd.GROUP}/fresh",
        f"deviceserver.{crd.GROUP}/runner",
        f"deviceserver.{crd.GROUP}/waiter",
    ]


def test_kubectl_wait_on_ready_and_on_state(kubectl: Cli, crd_api_client: client.ApiClient) -> None:
    _create(crd_api_client, _device_server())
    waiting = kubectl.run("wait", "--for=condition=Ready", "tds/t", "--timeout=1s", check=False)
    assert waiting.returncode != 0
    _patch_status(
        crd_api_client,
        crd.Kind.DEVICE_SERVER,
        "t",
        {
            "state": "Running",
            "conditions": [Condition("Ready", True, "Running", "").as_dict(1, now_rfc3339())],
        },
    )
    kubectl.run("wait", "--for=condition=Ready", "deviceserver/t", "--timeout=10s")
    kubectl.run(
        "wait",
        "--for=jsonpath={.status.state}=Running",
        f"deviceservers.{crd.GROUP}/t",
        "--timeout=10s",
    )


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("deviceservers.spec.dependsOn", "tango://host:port/domain/family/member"),
        ("deviceservers.spec.resources", "null is accepted"),
        ("deviceservers.status.state", "Waiting (TANGO host or a dependency not ready"),
        ("databaseds.spec.usePV", "PersistentVolumeClaim"),
    ],
)
def test_kubectl_explain_shows_the_descriptions(
    kubectl_shared: Cli, field: str, expected: str
) -> None:
    explained = kubectl_shared.run("explain", field).stdout
    description = explained.split("DESCRIPTION:", 1)[1]
    assert expected in " ".join(description.split()), explained
