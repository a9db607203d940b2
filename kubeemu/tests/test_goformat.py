"""Go value formatting (``kubeemu.goformat``): ``%q``, ``%v``/``%#v``, ``json.Marshal`` and
``field.Error``'s bad values, as kube-apiserver 1.31 prints them."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubeemu import fielderrors, goformat


def test_go_float_is_percent_v() -> None:
    assert goformat.go_float(1e6) == "1e+06"
    assert goformat.go_float(123456.0) == "123456"
    assert goformat.go_float(0.0001) == "0.0001"
    assert goformat.go_float(0.00001) == "1e-05"
    assert goformat.go_float(-2.5) == "-2.5"
    assert goformat.go_float(-0.0) == "-0"
    assert goformat.go_float(math.inf) == "+Inf"
    assert goformat.go_float(math.nan) == "NaN"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_round_trips(value: float) -> None:
    assert float(goformat.go_float(value)) == value


def test_go_quote_is_strconv_quote() -> None:
    assert goformat.go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert goformat.go_quote("\n\t\r\a\b\f\v") == '"\\n\\t\\r\\a\\b\\f\\v"'
    assert goformat.go_quote("\x01\x7f") == '"\\x01\\x7f"'
    assert goformat.go_quote("é😀") == '"é😀"'
    assert goformat.go_quote("\u00a0\u2028") == '"\\u00a0\\u2028"'


def test_go_json_is_json_marshal() -> None:
    assert goformat.go_json({"b": 1.0, "a": "<"}) == '{"a":"\\u003c","b":1}'
    assert goformat.go_json(["é", "&", "\u2028"]) == '["é","\\u0026","\\u2028"]'
    assert goformat.go_json([1e-7, 2.5e-6, 1e21, 1e20, None, True]) == (
        "[1e-7,0.0000025,1e+21,100000000000000000000,null,true]"
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def _as_float64(value: Any) -> Any:
    """Numbers as Go decodes them into interface{}: float64 (shortest digits may not be ints)."""
    if goformat.is_number(value):
        return float(value)
    if isinstance(value, list):
        return [_as_float64(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_float64(v) for k, v in value.items()}
    return value


@given(json_values)
def test_go_json_decodes_to_an_equal_value(value: Any) -> None:
    decoded = json.loads(goformat.go_json(value))
    assert goformat.json_equal(_as_float64(decoded), _as_float64(value))


def test_go_syntax_of_unstructured_and_typed_values() -> None:
    assert goformat.go_syntax([1, "a", None]) == '[]interface {}{1, "a", interface {}(nil)}'
    assert goformat.go_syntax({"b": 1.5, "a": True}) == (
        'map[string]interface {}{"a":true, "b":1.5}'
    )
    assert goformat.string_slice(["a", "b"]).text == '[]string{"a", "b"}'
    assert goformat.string_map({"b": "2", "a": "1"}).text == 'map[string]string{"a":"1", "b":"2"}'


def test_bad_value_prints_nil_as_the_quoted_string_null() -> None:
    assert goformat.bad_value(None) == '"null"'
    assert goformat.bad_value("x") == '"x"'
    assert goformat.bad_value(5) == "5"
    assert goformat.bad_value(1e6) == "1e+06"
    assert goformat.bad_value(False) == "false"
    assert goformat.bad_value(goformat.string_slice(["a"])) == '[]string{"a"}'


def test_field_invalid_prints_nil_as_the_quoted_string_null() -> None:
    """The constructor kubeemu.validation (built-ins) and kubeemu.crds report with."""
    assert fielderrors.invalid("spec.x", None, "bad") == (
        "spec.x",
        "FieldValueInvalid",
        'Invalid value: "null": bad',
    )


def test_json_equal_keeps_booleans_apart_from_numbers() -> None:
    assert goformat.json_equal(1, 1.0)
    assert not goformat.json_equal(True, 1)
    assert not goformat.json_equal([True], [1])
    assert goformat.json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not goformat.json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not goformat.json_equal("1", 1)
