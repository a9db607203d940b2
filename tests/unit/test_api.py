"""tango_operator.crd: the spec parser turns every bad input into a SpecError naming the field."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tango_operator import crd

JsonDict = dict[str, Any]


def _resource(**spec: Any) -> JsonDict:
    body: JsonDict = {
        "dsname": "TangoTest",
        "args": "test",
        "command": "/usr/local/bin/TangoTest",
        "databaseds": "databaseds-tango-base",
        "image": "artefact.skao.int/ska-tango-images-tango-java:9.5.0",
    }
    body.update(spec)
    return {
        "metadata": {"name": "tangotest-test"},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def _config(document: JsonDict) -> str:
    return json.dumps(document)


def test_the_ska_tangotest_example_parses() -> None:
    spec = crd.parse_device_server(
        _resource(
            config='{"servers": {"TangoTest": {"test": {"TangoTest": {"sys/tg_test/1": {}}}}}}',
            dependsOn=["sys/database/2"],
            resources=None,
            legacycompatibility=True,
        )
    )
    assert spec.server_instance == "TangoTest/test"
    assert spec.devices == ("sys/tg_test/1",)
    assert spec.depends_on[0].device == "sys/database/2"
    assert spec.pod == {}
    assert spec.cluster_domain == "cluster.local"


def test_an_instance_spelled_with_underscore_for_hyphen_is_an_error_that_says_so() -> None:
    """The charts' quirk: ``args: ps-2`` with the config key ``ps_2`` (issue 16).

    TANGO matches instance names exactly (up to case), so the config is not taken for this
    instance: the error names the near miss and what to change.
    """
    document: JsonDict = {"servers": {"PowerSupply": {"ps_2": {"PowerSupply": {"lab/ps/2": {}}}}}}
    resource = _resource(dsname="PowerSupply", args="ps-2", config=_config(document))
    with pytest.raises(crd.SpecError) as caught:
        crd.parse_device_server(resource)
    message = str(caught.value)
    assert "has no entry for this server instance PowerSupply/ps-2" in message
    assert "PowerSupply/ps_2 differs from spec.dsname/spec.args only in '-' and '_'" in message
    unrelated: JsonDict = {"servers": {"PowerSupply": {"ps-3": {"PowerSupply": {"lab/ps/3": {}}}}}}
    with pytest.raises(crd.SpecError) as other:
        crd.parse_device_server(
            _resource(dsname="PowerSupply", args="ps-2", config=_config(unrelated))
        )
    assert "differs" not in str(other.value), "only a near miss gets the hint"


def test_multi_instance_config_keeps_only_this_instance() -> None:
    document = {
        "servers": {
            "Motor": {
                "m1": {"Motor": {"lab/motor/1": {"properties": {"speed": ["1"]}}}},
                "m2": {"Motor": {"lab/motor/2": {}}},
            },
            "Other/x": {"Other": {"lab/other/1": {}}},
        },
        "classes": {"Motor": {"properties": {"unit": ["mm"]}}},
    }
    spec = crd.parse_device_server(_resource(dsname="Motor", args="m1", config=_config(document)))
    assert spec.config is not None
    assert spec.config.document == {
        "servers": {"Motor": {"m1": document["servers"]["Motor"]["m1"]}},  # type: ignore[index]
        "classes": document["classes"],
    }
    assert spec.config.ignored_instances == ("Motor/m2", "Other/x")
    assert spec.devices == ("lab/motor/1",)


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"config": "{"}, "spec.config", "not valid JSON"),
        ({"config": "[]"}, "spec.config", "JSON object"),
        ({"config": '{"devices": {}}'}, "spec.config", "unknown top-level keys"),
        ({"config": _config({"servers": {"Nope": {"x": {}}}})}, "spec.config.servers", "no entry"),
        (
            {"config": _config({"servers": {"TangoTest": {"test": {"C": {"a/b": {}}}}}})},
            "spec.config.servers.TangoTest.test.C.a/b",
            "domain/family/member",
        ),
        (
            {
                "config": _config(
                    {
                        "servers": {
                            "TangoTest": {
                                "test": {"C": {"a/b/c": {"properties": {"p": "not a list"}}}}
                            }
                        }
                    }
                )
            },
            "spec.config.servers.TangoTest.test.C.a/b/c.properties.p",
            "list of strings",
        ),
        (
            {"config": _config({"classes": {"C": {"properties": {"p": ["a\x00b"]}}}})},
            "spec.config.classes.C.properties.p",
            "NUL character",
        ),
        (
            {"config": _config({"servers": {"TangoTest": {"test": {"C": {"a/ü/c": {}}}}}})},
            "spec.config.servers.TangoTest.test.C.a/ü/c",
            "printable ASCII",
        ),
        (
            {
                "config": _config(
                    {"servers": {"TangoTest": {"test": {"C": {f"a/{'f' * 86}/c": {}}}}}}
                )
            },
            f"spec.config.servers.TangoTest.test.C.a/{'f' * 86}/c",
            "over TANGO's limit of 85",
        ),
        (
            {"config": _config({"servers": {"TangoTest": {"test": {"Clâss": {"a/b/c": {}}}}}})},
            "spec.config.servers.TangoTest.test.Clâss",
            "printable ASCII",
        ),
        (
            {
                "config": _config(
                    {"servers": {"TangoTest": {"test": {"C": {"a/b/c": {"alias": "my alias"}}}}}}
                )
            },
            "spec.config.servers.TangoTest.test.C.a/b/c.alias",
            "without whitespace",
        ),
        (
            {
                "config": _config(
                    {
                        "servers": {
                            "TangoTest": {"test": {"C": {"a/b/c": {"properties": {"nâme": []}}}}}
                        }
                    }
                )
            },
            "spec.config.servers.TangoTest.test.C.a/b/c.properties.nâme",
            "printable ASCII",
        ),
        (
            {"config": _config({"classes": {"C": {"properties": {" padded": ["1"]}}}})},
            "spec.config.classes.C.properties. padded",
            "leading or trailing",
        ),
        (
            {"config": _config({"classes": {"C": {"properties": {"*": [""], "0": [""]}}}})},
            "spec.config.classes.C.properties.*",
            "without '*'",
        ),
        (
            {"config": _config({"classes": {"C": {"properties": {"a\\b": ["1"]}}}})},
            "spec.config.classes.C.properties.a\\b",
            "without '*' or '\\'",
        ),
        ({"script": "print()"}, "spec.command", "not both"),
        ({"command": None}, "spec.command", "is required"),
        ({"dependsOn": ["not a device"]}, "spec.dependsOn[0]", "neither a TANGO device"),
        ({"dependsOn": ["a/b/c/d"]}, "spec.dependsOn[0]", "neither"),
        ({"dependsOn": ["host:99999"]}, "spec.dependsOn[0]", "out of range"),
        ({"args": "a/b"}, "spec.args", "without whitespace, '/'"),
        ({"args": "ünïcødé"}, "spec.args", "printable ASCII"),
        ({"args": "it's"}, "spec.args", "printable ASCII"),
        ({"args": "x" * 86}, "spec.args", "86 characters long, over TANGO's limit of 85"),
        ({"dsname": "D" * 300}, "spec.dsname", "300 characters long, over TANGO's limit of 85"),
        ({"databaseds": "Upper_Case"}, "spec.databaseds", "not a valid DNS name"),
        ({"databaseds": "x" * 64}, "spec.databaseds", "longer than the 63"),
        ({"image": None}, "spec.image", "is required"),
        ({"dsname": "../etc"}, "spec.dsname", "TANGO server name"),
        ({"clusterDomain": "bad domain"}, "spec.clusterDomain", "not a valid DNS name"),
        (
            {"volumes": [{"name": "tango-operator-config", "emptyDir": {}}]},
            "spec.volumes[0].name",
            "reserved",
        ),
    ],
)
def test_bad_specs_name_their_field(spec: JsonDict, field: str, fragment: str) -> None:
    with pytest.raises(crd.SpecError) as caught:
        crd.parse_device_server(_resource(**spec))
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_a_self_dependency_is_rejected() -> None:
    config = _config({"servers": {"TangoTest": {"test": {"TangoTest": {"sys/tg_test/1": {}}}}}})
    with pytest.raises(crd.SpecError) as caught:
        crd.parse_device_server(_resource(config=config, dependsOn=["SYS/tg_test/1"]))
    assert caught.value.field == "spec.dependsOn[0]"


@pytest.mark.parametrize(
    ("text", "device", "tango_host", "host", "port"),
    [
        ("sys/tg_test/1", "sys/tg_test/1", None, None, None),
        ("Lab/Motor/1", "lab/motor/1", None, None, None),
        ("tango://db.example:10000/lab/motor/1", "lab/motor/1", "db.example:10000", None, None),
        ("tango-db:3306", None, None, "tango-db", 3306),
        ("10.0.0.1:502", None, None, "10.0.0.1", 502),
    ],
)
def test_dependency_forms(
    text: str, device: str | None, tango_host: str | None, host: str | None, port: int | None
) -> None:
    dependency = crd.parse_dependency(text, "spec.dependsOn[0]")
    assert (dependency.device, dependency.tango_host, dependency.host, dependency.port) == (
        device,
        tango_host,
        host,
        port,
    )


@given(st.text())
def test_parsing_never_raises_anything_but_spec_error(text: str) -> None:
    for key in ("config", "args", "dsname", "databaseds"):
        with contextlib.suppress(crd.SpecError):
            crd.parse_device_server(_resource(**{key: text}))
    with contextlib.suppress(crd.SpecError):
        crd.parse_dependency(text, "spec.dependsOn[0]")


def test_tango_host_for() -> None:
    assert (
        crd.tango_host_for("databaseds-tango-base", namespace="ns", cluster_domain="cluster.local")
        == "databaseds-tango-base.ns.svc.cluster.local:10000"
    )
    assert crd.tango_host_for("db.example.org:20000", namespace="ns", cluster_domain="x") == (
        "db.example.org:20000"
    )


def test_database_ds_defaults_and_name_limit() -> None:
    spec = crd.parse_database_ds(
        {"metadata": {"name": "databaseds-tango-base"}, "spec": {"usePV": False}}
    )
    assert spec.databaseds_image == crd.DEFAULT_DATABASEDS_IMAGE
    assert spec.storage_size == "1Gi"
    with pytest.raises(crd.SpecError) as caught:
        crd.parse_database_ds({"metadata": {"name": "d" * 64}, "spec": {}})
    assert caught.value.field == "metadata.name"


def test_every_problem_of_a_spec_is_named_at_once() -> None:
    resource = _resource(
        args="two words",
        command="/bin/x",
        script="print()",
        dependsOn=["not a dependency", 7],
        clusterDomain="Not_A_Domain",
    )
    with pytest.raises(crd.SeveralSpecError) as caught:
        crd.parse_device_server(resource)
    fields = [problem.field for problem in caught.value.problems]
    assert fields == [
        "spec.args",
        "spec.command",
        "spec.dependsOn[0]",
        "spec.dependsOn[1]",
        "spec.clusterDomain",
    ]
    assert caught.value.field == "spec.args", "the first problem stays the SpecError's own"
    text = str(caught.value)
    assert all(f"{field}: " in text for field in fields), text
    # one problem is reported as before: a plain SpecError
    with pytest.raises(crd.SpecError) as single:
        crd.parse_device_server(_resource(clusterDomain="Not_A_Domain"))
    assert not isinstance(single.value, crd.SeveralSpecError)


def test_the_config_mode_annotation() -> None:
    resource = _resource()
    assert crd.parse_device_server(resource).config_mode is None, "the workers' setting decides"
    for mode in crd.ConfigMode:
        resource["metadata"]["annotations"] = {crd.CONFIG_MODE_ANNOTATION: str(mode)}
        assert crd.parse_device_server(resource).config_mode == mode
    resource["metadata"]["annotations"] = {crd.CONFIG_MODE_ANNOTATION: "Merge"}
    resource["spec"]["clusterDomain"] = "Not_A_Domain"
    with pytest.raises(crd.SeveralSpecError) as caught:
        crd.parse_device_server(resource)
    assert [problem.field for problem in caught.value.problems] == [
        "spec.clusterDomain",
        "metadata.annotations[tango.tango-controls.org/config-mode]",
    ]
    assert "'Merge' is not a configuration mode (expected Update or Declarative)" in str(
        caught.value
    )


def test_the_status_hash_names_the_document_and_the_mode() -> None:
    config = '{"servers": {"TangoTest": {"test": {"TangoTest": {"sys/tg_test/1": {}}}}}}'
    tango_config = crd.parse_device_server(_resource(config=config)).config
    assert tango_config is not None
    update = tango_config.applied_as(crd.ConfigMode.UPDATE)
    declarative = tango_config.applied_as(crd.ConfigMode.DECLARATIVE)
    assert update == f"{tango_config.digest}-Update"
    assert declarative == f"{tango_config.digest}-Declarative"
