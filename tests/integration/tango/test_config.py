"""PyTangoPort.apply_config / remove_server against PyTango's real sqlite DataBaseds.

What each configuration mode keeps and removes, on both DataBaseds: test_config_modes.py.

Everything is read back through PyTango's Database API (or, for "nothing was written",
a dump of every DB table through DbMySqlSelect), never through the code under test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import tango
from dsconfig.json2tango import apply_config as json2tango_apply
from dsconfig.json2tango import prepare_config

from devstack.ports import free_port
from tango_operator.crd import ConfigMode
from tests.support.tango_db import PyTangoDatabase
from tests.support.tango_servers import TangoServers
from workers.reconcile.ports import ConfigConflictError, TangoUnavailableError
from workers.tango import PyTangoPort

JsonDict = dict[str, Any]
UPDATE, DECLARATIVE = ConfigMode.UPDATE, ConfigMode.DECLARATIVE

AWKWARD = {
    "quotes": ['he said "hi"', "it's", "`back`"],
    "newlines": ["line one\nline two\n", "\n"],
    "unicode": ["héllo", "€ → ü 日本", "emoji 🛰"],
    "many": [str(i) for i in range(15)],  # past 10: ordered by a numeric count column
    "spaces": ["  leading and trailing  ", "", "tab\there"],
    "backslash": ["C:\\path\\n", "50%", "a_b*c?"],
}


def document(
    server: str, instance: str, devices: dict[str, JsonDict], **classes: JsonDict
) -> JsonDict:
    doc: JsonDict = {"servers": {server: {instance: {"Echo": devices}}}}
    if classes:
        doc["classes"] = classes
    return doc


def device_properties(db: PyTangoDatabase, device: str) -> dict[str, list[str]]:
    database = db.database()
    names = list(database.get_device_property_list(device, "*"))
    values = database.get_device_property(device, names) if names else {}
    return {name: list(value) for name, value in values.items()}


def devices_of(db: PyTangoDatabase, server_instance: str) -> dict[str, str]:
    listing = list(db.database().get_device_class_list(server_instance))
    return {
        d.lower(): c for d, c in zip(listing[0::2], listing[1::2], strict=True) if c != "DServer"
    }


@pytest.fixture
def names(unique: str) -> tuple[str, str, str]:
    """(server, instance, device prefix) unique to the test."""
    return "EchoServer", unique, f"cfg/{unique}"


@pytest.mark.parametrize("mode", list(ConfigMode))
def test_first_apply_writes_second_apply_writes_nothing(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str], mode: ConfigMode
) -> None:
    server, instance, prefix = names
    doc = document(
        server,
        instance,
        {
            f"{prefix}/1": {
                "properties": {"greeting": ["hi"], **AWKWARD},
                "attribute_properties": {"level": {"unit": ["mm"], "custom_prop": ["x"]}},
            },
            f"{prefix}/2": {},
        },
        Echo={
            "properties": {"shared": ["one", "two"]},
            "attribute_properties": {"level": {"label": ["L"]}},
        },
    )
    assert port.apply_config(tango_db.tango_host, f"{server}/{instance}", doc, mode=mode).changed
    assert devices_of(tango_db, f"{server}/{instance}") == {
        f"{prefix}/1": "Echo",
        f"{prefix}/2": "Echo",
    }
    assert device_properties(tango_db, f"{prefix}/1") == {"greeting": ["hi"], **AWKWARD}

    before = tango_db.snapshot()
    counts = tango_db.call_counts()
    assert not port.apply_config(
        tango_db.tango_host, f"{server}/{instance}", doc, mode=mode
    ).changed
    assert tango_db.snapshot() == before
    after = tango_db.call_counts()
    writes = {
        cmd
        for cmd in after
        if after[cmd] != counts[cmd] and cmd.startswith(("DbPut", "DbAdd", "DbDelete"))
    }
    assert writes == set()


def test_every_awkward_value_round_trips_exactly(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str]
) -> None:
    server, instance, prefix = names
    device = f"{prefix}/1"
    doc = document(
        server,
        instance,
        {
            device: {
                "properties": AWKWARD,
                "attribute_properties": {"level": {"description": ['ü\n"q"']}},
            }
        },
        Echo={"properties": {"class_awkward": AWKWARD["unicode"] + AWKWARD["newlines"]}},
    )
    port.apply_config(tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE)
    database = tango_db.database()
    for name, values in AWKWARD.items():
        assert list(database.get_device_property(device, [name])[name]) == values, name
    attribute = database.get_device_attribute_property(device, ["level"])["level"]
    assert list(attribute["description"]) == ['ü\n"q"']
    shared = database.get_class_property("Echo", ["class_awkward"])["class_awkward"]
    assert list(shared) == AWKWARD["unicode"] + AWKWARD["newlines"]
    before = tango_db.snapshot()
    assert not port.apply_config(
        tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE
    ).changed
    assert tango_db.snapshot() == before


def test_changed_document_updates_device_attribute_and_class_properties(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str], unique: str
) -> None:
    """In Declarative mode: what the document drops, or gives as ``[]``, is deleted."""
    server, instance, prefix = names
    cls = f"Cls{unique}"
    device = f"{prefix}/1"

    def doc(device_props: JsonDict, attr_props: JsonDict, class_props: JsonDict) -> JsonDict:
        return {
            "servers": {
                server: {
                    instance: {
                        cls: {
                            device: {"properties": device_props, "attribute_properties": attr_props}
                        }
                    }
                }
            },
            "classes": {
                cls: {"properties": class_props, "attribute_properties": {"level": {"unit": ["V"]}}}
            },
        }

    first = doc(
        {"a": ["1"], "b": ["2"]},
        {"level": {"unit": ["mm"], "format": ["%6.2f"]}},
        {"c": ["3"], "d": ["4"]},
    )
    second = doc({"a": ["1", "1b"]}, {"level": {"unit": ["m"], "format": []}}, {"c": ["33"]})
    target = f"{server}/{instance}"
    assert port.apply_config(tango_db.tango_host, target, first, mode=DECLARATIVE).changed
    assert port.apply_config(tango_db.tango_host, target, second, mode=DECLARATIVE).changed
    database = tango_db.database()
    assert device_properties(tango_db, device) == {"a": ["1", "1b"]}  # b removed
    level = database.get_device_attribute_property(device, ["level"])["level"]
    assert {k: list(v) for k, v in level.items()} == {"unit": ["m"]}  # [] removes format
    assert {k: list(v) for k, v in database.get_class_property(cls, ["c", "d"]).items()} == {
        "c": ["33"],
        "d": [],
    }
    class_level = database.get_class_attribute_property(cls, ["level"])["level"]
    assert list(class_level["unit"]) == ["V"]
    assert not port.apply_config(tango_db.tango_host, target, second, mode=DECLARATIVE).changed


def test_empty_properties_object_clears_them_and_a_missing_key_leaves_them(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str]
) -> None:
    """In Declarative mode (Update leaves both alone)."""
    server, instance, prefix = names
    target = f"{server}/{instance}"
    one, two = f"{prefix}/1", f"{prefix}/2"
    port.apply_config(
        tango_db.tango_host,
        target,
        document(
            server, instance, {one: {"properties": {"p": ["1"]}}, two: {"properties": {"p": ["2"]}}}
        ),
        mode=DECLARATIVE,
    )
    port.apply_config(
        tango_db.tango_host,
        target,
        document(server, instance, {one: {"properties": {}}, two: {}}),
        mode=DECLARATIVE,
    )
    assert device_properties(tango_db, one) == {}
    assert device_properties(tango_db, two) == {"p": ["2"]}  # dsconfig: no key, not touched


def test_device_removed_from_document_is_removed_from_db(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str], unique: str
) -> None:
    """In Declarative mode (Update keeps it: test_config_modes.py)."""
    server, instance, prefix = names
    target = f"{server}/{instance}"
    other_class = f"Other{unique}"
    full = document(
        server, instance, {f"{prefix}/1": {}, f"{prefix}/2": {"properties": {"p": ["x"]}}}
    )
    full["servers"][server][instance][other_class] = {f"{prefix}/3": {}}
    port.apply_config(tango_db.tango_host, target, full, mode=DECLARATIVE)
    assert set(devices_of(tango_db, target)) == {f"{prefix}/1", f"{prefix}/2", f"{prefix}/3"}
    smaller = document(server, instance, {f"{prefix}/1": {}})  # /2 gone, the other class too
    assert port.apply_config(tango_db.tango_host, target, smaller, mode=DECLARATIVE).changed
    assert devices_of(tango_db, target) == {f"{prefix}/1": "Echo"}
    with pytest.raises(tango.DevFailed):
        tango_db.database().get_device_info(f"{prefix}/2")
    assert device_properties(tango_db, f"{prefix}/2") == {}  # its properties went with it


def test_device_of_another_server_is_a_conflict_and_nothing_is_written(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, names: tuple[str, str, str]
) -> None:
    server, instance, prefix = names
    owner = f"EchoServer/{instance}-owner"
    servers.register(owner, "Echo", [f"{prefix}/taken"])
    before = tango_db.snapshot()
    doc = document(
        server, instance, {f"{prefix}/free": {}, f"{prefix}/taken": {"properties": {"p": ["1"]}}}
    )
    with pytest.raises(ConfigConflictError) as raised:
        port.apply_config(tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE)
    assert f"{prefix}/taken" in str(raised.value)
    assert owner in str(raised.value)
    assert tango_db.snapshot() == before
    assert tango_db.database().get_device_info(f"{prefix}/taken").ds_full_name == owner


@pytest.mark.parametrize("mode", list(ConfigMode))
def test_aliases_are_set_kept_moved_and_removed(
    tango_db: PyTangoDatabase,
    port: PyTangoPort,
    names: tuple[str, str, str],
    unique: str,
    mode: ConfigMode,
) -> None:
    """In both modes, as json2tango's alias pre-step (which ``-u`` does not skip)."""
    server, instance, prefix = names
    target = f"{server}/{instance}"
    one, two = f"{prefix}/1", f"{prefix}/2"
    alias = f"alias-{unique}"
    database = tango_db.database()
    port.apply_config(
        tango_db.tango_host,
        target,
        document(server, instance, {one: {"alias": alias}, two: {}}),
        mode=mode,
    )
    assert database.get_device_from_alias(alias) == one
    before = tango_db.snapshot()
    assert not port.apply_config(
        tango_db.tango_host,
        target,
        document(server, instance, {one: {"alias": alias}, two: {}}),
        mode=mode,
    ).changed
    assert tango_db.snapshot() == before
    assert port.apply_config(
        tango_db.tango_host,
        target,
        document(server, instance, {one: {}, two: {"alias": alias}}),
        mode=mode,
    ).changed
    assert database.get_device_from_alias(alias) == two
    port.apply_config(
        tango_db.tango_host, target, document(server, instance, {one: {}, two: {}}), mode=mode
    )
    with pytest.raises(tango.DevFailed):
        database.get_device_from_alias(alias)


@pytest.mark.parametrize("mode", list(ConfigMode))
def test_an_empty_alias_is_no_alias_and_is_not_written_again(
    tango_db: PyTangoDatabase,
    port: PyTangoPort,
    names: tuple[str, str, str],
    unique: str,
    mode: ConfigMode,
) -> None:
    """``"alias": ""`` (which the parser admits as "no alias") once rewrote at every apply."""
    server, instance, prefix = names
    target = f"{server}/{instance}"
    one = f"{prefix}/1"
    empty = document(server, instance, {one: {"alias": ""}})
    port.apply_config(tango_db.tango_host, target, empty, mode=mode)
    before = tango_db.snapshot()
    assert not port.apply_config(tango_db.tango_host, target, empty, mode=mode).changed
    assert tango_db.snapshot() == before
    # and an alias set before is removed by it, as by a device without one
    alias = f"alias-{unique}"
    with_alias = document(server, instance, {one: {"alias": alias}})
    port.apply_config(tango_db.tango_host, target, with_alias, mode=mode)
    assert tango_db.database().get_device_from_alias(alias) == one
    assert port.apply_config(tango_db.tango_host, target, empty, mode=mode).changed
    with pytest.raises(tango.DevFailed):
        tango_db.database().get_device_from_alias(alias)


def test_alias_of_another_servers_device_is_a_conflict(
    tango_db: PyTangoDatabase,
    servers: TangoServers,
    port: PyTangoPort,
    names: tuple[str, str, str],
    unique: str,
) -> None:
    server, instance, prefix = names
    owner = f"EchoServer/{instance}-owner"
    servers.register(owner, "Echo", [f"{prefix}/theirs"])
    tango_db.database().put_device_alias(f"{prefix}/theirs", f"alias-{unique}")
    doc = document(server, instance, {f"{prefix}/mine": {"alias": f"alias-{unique}"}})
    with pytest.raises(ConfigConflictError, match=owner):
        port.apply_config(tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE)


def test_like_wildcards_in_the_server_name_do_not_touch_other_servers(
    tango_db: PyTangoDatabase, port: PyTangoPort, unique: str
) -> None:
    """The dump of dsconfig selects with SQL LIKE, where ``_`` matches any character."""
    prefix = f"like/{unique}"
    lookalike: JsonDict = {"servers": {"EchoXServer": {unique: {"Echo": {f"{prefix}/x": {}}}}}}
    port.apply_config(tango_db.tango_host, f"EchoXServer/{unique}", lookalike, mode=UPDATE)
    doc: JsonDict = {"servers": {"Echo_Server": {unique: {"Echo": {f"{prefix}/underscore": {}}}}}}
    port.apply_config(tango_db.tango_host, f"Echo_Server/{unique}", doc, mode=UPDATE)
    assert not port.apply_config(
        tango_db.tango_host, f"Echo_Server/{unique}", doc, mode=UPDATE
    ).changed
    assert devices_of(tango_db, f"EchoXServer/{unique}") == {f"{prefix}/x": "Echo"}


def test_names_spelled_differently_are_the_same_names(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str]
) -> None:
    server, instance, prefix = names
    doc = document(server, instance, {f"{prefix}/Mixed": {"properties": {"Greeting": ["x"]}}})
    port.apply_config(tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE)
    shouted = {
        "servers": {
            server.upper(): {
                instance.upper(): {
                    "ECHO": {f"{prefix}/mixed".upper(): {"properties": {"greeting": ["x"]}}}
                }
            }
        }
    }
    before = tango_db.snapshot()
    assert not port.apply_config(
        tango_db.tango_host, f"{server.upper()}/{instance.upper()}", shouted, mode=UPDATE
    ).changed
    assert tango_db.snapshot() == before


def test_remove_server_removes_devices_and_properties_and_is_idempotent(
    tango_db: PyTangoDatabase, port: PyTangoPort, names: tuple[str, str, str]
) -> None:
    server, instance, prefix = names
    target = f"{server}/{instance}"
    port.apply_config(
        tango_db.tango_host,
        target,
        document(server, instance, {f"{prefix}/1": {"properties": {"p": ["1"]}}}),
        mode=UPDATE,
    )
    port.remove_server(tango_db.tango_host, target)
    assert devices_of(tango_db, target) == {}
    assert list(tango_db.database().get_device_class_list(target)) == []
    assert device_properties(tango_db, f"{prefix}/1") == {}
    port.remove_server(tango_db.tango_host, target)  # already gone: fine


def test_db_unreachable_is_tango_unavailable(port: PyTangoPort) -> None:
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(TangoUnavailableError, match="refused"):
        port.apply_config(
            host, "EchoServer/x", document("EchoServer", "x", {"a/b/c": {}}), mode=UPDATE
        )
    with pytest.raises(TangoUnavailableError):
        port.remove_server(host, "EchoServer/x")


def test_db_stopped_between_calls_is_tango_unavailable(
    own_tango_db: PyTangoDatabase, port: PyTangoPort
) -> None:
    doc = document("EchoServer", "x", {"stop/me/1": {}})
    port.apply_config(
        own_tango_db.tango_host, "EchoServer/x", doc, mode=UPDATE
    )  # the Database object is cached
    own_tango_db.stop()
    with pytest.raises(TangoUnavailableError):
        port.apply_config(own_tango_db.tango_host, "EchoServer/x", doc, mode=UPDATE)


@pytest.mark.parametrize(
    ("server_instance", "doc", "message"),
    [
        ("EchoServer/v", document("EchoServer", "v", {"bad/name/1/2": {}}), "refused add_device"),
        (
            "EchoServer/v",
            document("EchoServer", "v", {"v/a/1": {"properties": {"p": "not a list"}}}),
            "list of strings",
        ),
        ("EchoServer/v", document("EchoServer", "other", {"v/a/1": {}}), "other server instances"),
        ("EchoServer", document("EchoServer", "v", {"v/a/1": {}}), "Server/instance"),
        ("Echo'Server/v", {"servers": {}}, "unsupported characters"),
    ],
)
def test_documents_the_db_refuses_are_value_errors(
    tango_db: PyTangoDatabase, port: PyTangoPort, server_instance: str, doc: JsonDict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        port.apply_config(tango_db.tango_host, server_instance, doc, mode=UPDATE)


def test_dsconfig_json2tango_itself_rewrites_an_unchanged_document_on_this_db(
    own_tango_db: PyTangoDatabase, names: tuple[str, str, str]
) -> None:
    """The quirk PyTangoPort works around, pinned.

    If dsconfig fixes it, this test says the alias workaround in workers.tango.config can go
    (docs/tango.md). It shows when the device that the DB returns last (in name order) is one of the
    document's: a fresh DB and a name that sorts after ``sys/tg_test/1`` (as ``test/...`` names do).
    """
    server, instance, _ = names
    device = f"zz/{instance}/1"
    doc = document(server, instance, {device: {}})
    database = own_tango_db.database()
    json2tango_apply(prepare_config(copy.deepcopy(doc)), database, write=True)
    # the cause: a NULL alias comes back from DbMySqlSelect as "" (flag 0), last row wins
    flags, values = own_tango_db.proxy().command_inout(
        "DbMySqlSelect", "SELECT alias, name FROM device"
    )
    assert (values[-2], values[-1], int(flags[-4])) == ("", device, 0)
    _, _, calls, *_ = json2tango_apply(prepare_config(copy.deepcopy(doc)), database, write=False)
    assert [(method, args) for method, args, _ in calls] == [("delete_device_alias", ("",))]
    # and PyTangoPort, on the same DB and document, sees nothing to do
    assert (
        not PyTangoPort(cache_ttl=0)
        .apply_config(own_tango_db.tango_host, f"{server}/{instance}", doc, mode=UPDATE)
        .changed
    )
