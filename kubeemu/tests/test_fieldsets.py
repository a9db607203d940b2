"""Comparing two objects (SMD ``Compare``): the shortcuts change nothing.

``fieldsets._compare`` skips a subtree that is the same JSON on both sides and lists a subtree
present on one side only without comparing it; these properties check it against the plain
walk (:func:`_reference_compare`, the comparison as first written) on random Pod-shaped
objects, typed-conversion errors (a container or port without its key) included.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeemu.fieldsets import (
    ABSENT,
    Path,
    TypedConversionError,
    compare_objects,
    configuration_fields,
    equal_objects,
    index_items,
    raw_fields,
)
from kubeemu.goformat import json_equal
from kubeemu.schema import SchemaNode, builtin_schema

JsonDict = dict[str, Any]
POD = builtin_schema("", "v1", "Pod")

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 2.5]), st.text("ab")
)
_names = st.sampled_from(["a", "b", "c"])
_port = st.dictionaries(
    st.sampled_from(["containerPort", "protocol", "name"]),
    st.one_of(st.integers(1, 3), st.sampled_from(["TCP", "UDP", "p"])),
    max_size=3,
)
_container = st.fixed_dictionaries(
    {},
    optional={
        "name": _names,
        "image": st.sampled_from(["i", "j"]),
        "ports": st.lists(_port, max_size=3),
        "args": st.lists(st.text("xy", max_size=2), max_size=2),
        "env": st.lists(
            st.fixed_dictionaries({"name": _names}, optional={"value": _scalars}), max_size=3
        ),
    },
)
_pod = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("p")},
            optional={
                "labels": st.dictionaries(_names, st.text("xy", max_size=2), max_size=3),
                "finalizers": st.lists(_names, max_size=3),
            },
        ),
    },
    optional={
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "containers": st.lists(_container, max_size=3),
                "nodeSelector": st.dictionaries(_names, _scalars, max_size=2),
                "hostNetwork": st.one_of(st.booleans(), st.integers(0, 1)),
            },
        ),
        "status": st.fixed_dictionaries(
            {}, optional={"phase": _scalars, "conditions": st.lists(_port, max_size=2)}
        ),
    },
)


def _reference_compare(
    old: Any, new: Any, node: SchemaNode, path: Path, out: tuple[set[Path], ...]
) -> None:
    """SMD ``Compare`` walked node by node: added, modified and removed paths into ``out``."""
    kinds = {type(v) for v in (old, new) if v is not ABSENT and v is not None}
    shape = "map" if kinds == {dict} else "list" if kinds == {list} else "leaf"
    empty = all(v is ABSENT or v is None or v in ({}, []) for v in (old, new))
    granular = (
        (shape == "map" and node.map_type != "atomic")
        or (shape == "list" and node.list_type != "atomic")
    ) and not empty
    added, modified, removed = out
    if not granular:
        if old is ABSENT:
            added.add(path)
        elif new is ABSENT:
            removed.add(path)
        elif not json_equal(old, new):
            modified.add(path)
        return
    if shape == "map":
        old_map = old if isinstance(old, dict) else {}
        new_map = new if isinstance(new, dict) else {}
        for name in {**old_map, **new_map}:
            _reference_compare(
                old_map.get(name, ABSENT),
                new_map.get(name, ABSENT),
                node.property(name),
                (*path, ("f", name)),
                out,
            )
    else:
        old_items = index_items(old if isinstance(old, list) else [], node, path)
        new_items = index_items(new if isinstance(new, list) else [], node, path)
        for element in {**old_items, **new_items}:
            _reference_compare(
                old_items.get(element, ABSENT),
                new_items.get(element, ABSENT),
                node.items(),
                (*path, element),
                out,
            )
    if old is ABSENT:
        added.add(path)
    elif new is ABSENT:
        removed.add(path)


def _outcome(old: JsonDict, new: JsonDict, *, reference: bool = False) -> Any:
    try:
        if reference:
            found: tuple[set[Path], ...] = (set(), set(), set())
            _reference_compare(old, new, POD, (), found)
            for paths in found:
                paths.discard(())
            added, modified, removed = found
        else:
            comparison = compare_objects(old, new, POD)
            added, modified, removed = comparison.added, comparison.modified, comparison.removed
    except TypedConversionError as error:
        return ("error", str(error))
    return (added, modified, removed)


@settings(max_examples=400, deadline=None)
@given(
    old=_pod,
    new=_pod,
    share=st.sampled_from(["none", "spec", "metadata", "all", "old empty", "new empty"]),
)
def test_the_comparison_finds_what_the_plain_walk_finds(
    old: JsonDict, new: JsonDict, share: str
) -> None:
    if share == "all":
        new = copy.deepcopy(old)
    elif share == "old empty":
        old = {}
    elif share == "new empty":
        new = {}
    elif share in old:
        new[share] = copy.deepcopy(old[share])
    assert _outcome(old, new) == _outcome(old, new, reference=True)


def test_identical_containers_without_their_key_still_fail_typed_conversion() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "i"}]}}
    with pytest.raises(TypedConversionError, match=r"\.spec\.containers: element 0"):
        compare_objects(pod, copy.deepcopy(pod), POD)


def test_true_and_one_are_not_the_same_value() -> None:
    old = {"metadata": {"name": "p"}, "spec": {"hostNetwork": True}}
    new = {"metadata": {"name": "p"}, "spec": {"hostNetwork": 1}}
    assert compare_objects(old, new, POD).modified == {(("f", "spec"), ("f", "hostNetwork"))}


def test_identical_objects_of_a_recursive_schema_compare_without_endless_descent() -> None:
    crd_schema = builtin_schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    assert crd_schema.keyed_lists_below
    found = compare_objects(crd, copy.deepcopy(crd), crd_schema)
    assert (found.added, found.modified, found.removed) == (set(), set(), set())


@pytest.mark.parametrize(
    ("old", "new", "equal"),
    [
        ({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": [False]}, {"a": [0]}, False),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
    ],
)
def test_equal_objects_is_json_equality(old: JsonDict, new: JsonDict, equal: bool) -> None:
    assert equal_objects(old, new) is equal


def test_configuration_fields_are_remembered_and_failures_raised_every_time() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert configuration_fields(pod, POD) == frozenset(raw_fields(pod, POD, strict=True))
    assert configuration_fields(copy.deepcopy(pod), POD) is configuration_fields(pod, POD)
    undeclared = {"metadata": {"name": "p"}, "spec": {"bogus": 1}}
    for _ in range(2):
        with pytest.raises(TypedConversionError, match="field not declared in schema"):
            configuration_fields(undeclared, POD)
