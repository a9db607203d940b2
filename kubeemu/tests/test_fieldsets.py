"""Comparing two objects (SMD ``Compare``): the shortcut over identical subtrees changes nothing.

``fieldsets._compare`` skips a subtree that is the same JSON on both sides; these properties
check it against the full walk (the shortcut switched off) on random Pod-shaped objects,
typed-conversion errors (a container or port without its key) included.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeemu import fieldsets
from kubeemu.fieldsets import TypedConversionError, compare_objects
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


def _outcome(old: JsonDict, new: JsonDict, schema: SchemaNode) -> Any:
    try:
        found = compare_objects(old, new, schema)
    except TypedConversionError as error:
        return ("error", str(error))
    return (sorted(map(repr, found.added)), sorted(map(repr, found.modified)), found.removed)


def _full_walk(old: JsonDict, new: JsonDict, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        patched.setattr(fieldsets, "_same_json", lambda _old, _new: False)
        return _outcome(old, new, POD)


@settings(max_examples=300, deadline=None)
@given(old=_pod, new=_pod, share=st.sampled_from(["none", "spec", "metadata", "all"]))
def test_identical_subtrees_compare_as_the_full_walk_does(
    old: JsonDict, new: JsonDict, share: str
) -> None:
    if share == "all":
        new = copy.deepcopy(old)
    elif share in old:
        new[share] = copy.deepcopy(old[share])
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = _full_walk(old, new, monkeypatch)
    assert _outcome(old, new, POD) == expected


def test_identical_containers_without_their_key_still_fail_typed_conversion() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "i"}]}}
    with pytest.raises(TypedConversionError, match=r"\.spec\.containers: element 0"):
        compare_objects(pod, copy.deepcopy(pod), POD)


def test_true_and_one_are_not_the_same_value() -> None:
    old = {"metadata": {"name": "p"}, "spec": {"hostNetwork": True}}
    new = {"metadata": {"name": "p"}, "spec": {"hostNetwork": 1}}
    assert compare_objects(old, new, POD).modified == {(("f", "spec"), ("f", "hostNetwork"))}
