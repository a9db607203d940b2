"""watcher.mapping: which watch events become which reconcile keys (pure, no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tango_operator import crd
from tango_operator.keys import Key
from watcher.mapping import Mapper, owner_keys

JsonDict = dict[str, Any]
KEY = Key("DeviceServer", "ns", "ds")


def _cr(kind: str = "DeviceServer", name: str = "ds", **meta: Any) -> JsonDict:
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "generation": 1, **meta},
        "spec": {"image": "i"},
        "status": {},
    }


def _owned(*owners: JsonDict, kind: str = "StatefulSet") -> JsonDict:
    return {
        "kind": kind,
        "metadata": {"name": "child", "namespace": "ns", "ownerReferences": list(owners)},
    }


def _owner(
    kind: str = "DeviceServer",
    name: str = "ds",
    api_version: str = "tango.tango-controls.org/v1",
    controller: bool | None = True,
) -> JsonDict:
    reference: JsonDict = {"apiVersion": api_version, "kind": kind, "name": name, "uid": "u"}
    if controller is not None:
        reference["controller"] = controller
    return reference


def test_custom_resource_events_map_to_their_own_key() -> None:
    mapper = Mapper()
    assert mapper.keys_for("DeviceServer", "ADDED", _cr()) == [KEY]
    assert mapper.keys_for("DatabaseDS", "ADDED", _cr("DatabaseDS", "db")) == [
        Key("DatabaseDS", "ns", "db")
    ]


def test_status_only_modification_maps_to_nothing() -> None:
    mapper = Mapper()
    obj = _cr(resourceVersion="1")
    mapper.keys_for("DeviceServer", "ADDED", obj)
    changed = copy.deepcopy(obj)
    changed["status"] = {"state": "Running"}
    changed["metadata"]["resourceVersion"] = "2"
    changed["metadata"]["managedFields"] = [{"manager": "tango-operator"}]
    assert mapper.keys_for("DeviceServer", "MODIFIED", changed) == []
    assert mapper.keys_for("DeviceServer", "MODIFIED", changed) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("generation", 2),
        ("labels", {"a": "b"}),
        ("annotations", {"a": "b"}),
        ("finalizers", ["tango.tango-controls.org/cleanup"]),
        ("deletionTimestamp", "2026-01-01T00:00:00Z"),
    ],
)
def test_what_a_reconcile_depends_on_maps_to_the_key(field: str, value: Any) -> None:
    mapper = Mapper()
    obj = _cr()
    mapper.keys_for("DeviceServer", "ADDED", obj)
    changed = copy.deepcopy(obj)
    changed["metadata"][field] = value
    assert mapper.keys_for("DeviceServer", "MODIFIED", changed) == [KEY]
    assert mapper.keys_for("DeviceServer", "MODIFIED", changed) == [], "then remembered"


def test_first_modified_of_an_unseen_object_maps_to_the_key() -> None:
    assert Mapper().keys_for("DeviceServer", "MODIFIED", _cr()) == [KEY]


def test_deleted_maps_to_the_key_and_forgets_it() -> None:
    mapper = Mapper()
    mapper.keys_for("DeviceServer", "ADDED", _cr())
    assert len(mapper) == 1
    assert mapper.keys_for("DeviceServer", "DELETED", _cr()) == [KEY]
    assert len(mapper) == 0
    assert mapper.keys_for("DeviceServer", "MODIFIED", _cr()) == [KEY], "new again"


def test_a_relist_maps_only_what_changed_since() -> None:
    """A relist re-adds everything; the resync after it offers every key once anyway."""
    mapper = Mapper()
    mapper.keys_for("DeviceServer", "ADDED", _cr())
    assert mapper.keys_for("DeviceServer", "ADDED", _cr()) == []
    changed = _cr()
    changed["metadata"]["generation"] = 2
    assert mapper.keys_for("DeviceServer", "ADDED", changed) == [KEY]
    mapper.forget_all()
    assert len(mapper) == 0
    assert mapper.keys_for("DeviceServer", "ADDED", _cr()) == [KEY], "new again"


def test_the_operators_own_finalizer_maps_to_nothing_but_others_do() -> None:
    mapper = Mapper()
    mapper.keys_for("DeviceServer", "ADDED", _cr())
    finalized = _cr()
    finalized["metadata"]["finalizers"] = [crd.FINALIZER]
    assert mapper.keys_for("DeviceServer", "MODIFIED", finalized) == []
    finalized["metadata"]["finalizers"] = [crd.FINALIZER, "example.org/keep"]
    assert mapper.keys_for("DeviceServer", "MODIFIED", finalized) == [KEY]


def test_child_maps_to_its_controller_owner() -> None:
    mapper = Mapper()
    for kind in ("StatefulSet", "Service", "ConfigMap", "PersistentVolumeClaim"):
        assert mapper.keys_for(kind, "MODIFIED", _owned(_owner(), kind=kind)) == [KEY]
    database = _owned(_owner("DatabaseDS", "db"))
    assert mapper.keys_for("StatefulSet", "DELETED", database) == [Key("DatabaseDS", "ns", "db")]
    assert len(mapper) == 0, "children leave no state behind"


@pytest.mark.parametrize(
    "reference",
    [
        _owner(controller=False),
        _owner(controller=None),
        _owner(api_version="apps/v1", kind="StatefulSet"),
        _owner(api_version="example.org/v1"),
        _owner(api_version="tango.tango-controls.org.evil/v1"),
        _owner(kind="Unknown"),
    ],
)
def test_other_owners_map_to_nothing(reference: JsonDict) -> None:
    assert owner_keys(_owned(reference)) == []


def test_the_controller_reference_wins_among_several() -> None:
    child = _owned(_owner(name="other", controller=False), _owner(name="ds"))
    assert owner_keys(child) == [KEY]


def test_objects_without_owner_or_name_map_to_nothing() -> None:
    mapper = Mapper()
    assert (
        mapper.keys_for("ConfigMap", "ADDED", {"metadata": {"name": "x", "namespace": "ns"}}) == []
    )
    assert mapper.keys_for("DeviceServer", "ADDED", {"metadata": {"name": "x"}}) == []
    assert mapper.keys_for("DeviceServer", "ADDED", {}) == []
