"""tango_operator.jsontext writes the standard library's text and reads what it reads.

The ledger compares stored records as strings and the render skips work on equal digests, so
the text must not change when the library under it does: these pin it to
``json.dumps(value, separators=(",", ":"), ensure_ascii=False[, sort_keys=True])``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tango_operator import jsontext
from tango_operator.keys import Key
from tango_operator.observed import ChildState, digest_of

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text()  # any code point, lone surrogates included
SCALARS = st.none() | st.booleans() | INT64 | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


def _stdlib(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


@given(VALUES, st.booleans())
def test_dumps_writes_the_standard_librarys_text(value: Any, sort_keys: bool) -> None:
    assert jsontext.dumps(value, sort_keys=sort_keys) == _stdlib(value, sort_keys)


@given(VALUES)
def test_loads_reads_back_what_dumps_wrote(value: Any) -> None:
    assert jsontext.loads(jsontext.dumps(value)) == value


@given(st.integers(), st.booleans())
def test_integers_of_any_size_are_read_exactly(number: int, as_bytes: bool) -> None:
    """A CR's ``config`` may hold an integer beyond 64 bits; orjson alone reads it as a float."""
    text = json.dumps({"config": [number, str(number)]})
    assert jsontext.loads(text.encode() if as_bytes else text) == {"config": [number, str(number)]}


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_keep_their_value(number: float) -> None:
    text = jsontext.dumps({"x": number})
    assert jsontext.loads(text) == {"x": number}
    assert json.loads(text) == {"x": number}  # and the standard library reads it too


@pytest.mark.parametrize(
    "value",
    [
        {1: "a key that is not a string"},
        {"big": 2**64},
        ["a lone surrogate \ud800"],
    ],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert jsontext.dumps(value) == _stdlib(value, False)
    assert jsontext.dumps(value, sort_keys=True) == _stdlib(value, True)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nan"])
def test_not_json_is_the_standard_librarys_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads(text)


def test_bytes_that_are_not_utf8_are_a_value_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        jsontext.loads(b"\xff")


def test_special_floats_are_written_as_the_standard_library_would_not() -> None:
    """Documented: orjson writes null where json would write the non-JSON NaN."""
    assert jsontext.dumps([math.nan, math.inf]) == "[null,null]"


def test_the_forms_stored_in_redis_are_unchanged() -> None:
    """Keys, ledger records and digests as the operator wrote them before orjson."""
    key = Key("DeviceServer", "team-a", "motor-1")
    assert key.encode() == '["DeviceServer","team-a","motor-1"]'
    assert Key.decode(key.encode()) == key
    state = ChildState(digest="0123456789abcdef", version="g3", ready=True, detail={"replicas": 1})
    assert state.encode() == (
        '{"digest":"0123456789abcdef","ready":true,"replicas":1,"version":"g3","watched":true}'
    )
    assert ChildState.decode(state.encode()) == state
    manifest = {"kind": "ConfigMap", "metadata": {"name": "é"}, "data": {"b": "1", "a": "2"}}
    expected = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest_of(manifest) == hashlib.sha256(expected.encode()).hexdigest()[:16]
