"""Values printed the way kube-apiserver's Go code prints them, for error texts and cells.

The emulator's messages are upstream's, and upstream builds them with ``fmt`` verbs and
``encoding/json``; the callers (validation of built-ins and custom resources, CRD checks,
admission, selectors, server-side apply's field sets, table cells) pass decoded JSON values
here and put the returned text into Status causes or Table rows.

- :func:`go_quote` is ``%q`` (``strconv.Quote``); :func:`go_float` is ``%v`` of a float64;
  :func:`go_syntax` is ``%#v`` of an unstructured value (``[]interface {}{...}``,
  ``map[string]interface {}{...}``), and :func:`string_slice` / :func:`string_map` are ``%#v``
  of the typed ``[]string`` / ``map[string]string`` fields of built-in kinds.
- :func:`bad_value` is how ``field.Error.ErrorBody()`` (k8s.io/apimachinery 1.31,
  ``pkg/util/validation/field/errors.go``) shows a bad value: int64/float64/bool with ``%v``,
  a string with ``%q``, anything else with ``%#v``; a nil value is first replaced by the
  *string* ``"null"``, so it prints quoted: ``Invalid value: "null"``.  (Kubernetes 1.33
  changed the fallback to ``json.Marshal``, which prints nil as ``null``; the emulator speaks
  1.31.)
- :func:`go_json` is ``json.Marshal`` of a decoded value: sorted keys, no spaces, ``<``, ``>``,
  ``&``, U+2028 and U+2029 escaped, UTF-8 kept, floats in Go's shortest form (``1`` for 1.0).
- :func:`json_equal` compares decoded JSON values as Go's unstructured comparisons do: ``true``
  is not ``1``, ``1`` equals ``1.0``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
_JSON_HTML_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


@dataclass(frozen=True)
class GoSyntax:
    """A value whose Go type the caller knows, already rendered with ``%#v``."""

    text: str


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``): printable runes as they are, the rest escaped."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _shortest_digits(value: float) -> tuple[str, str, int]:
    """Sign, shortest round-trip digits and decimal-point position of a finite, non-zero float."""
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    return ("-" if sign else ""), digits, len(digits) + exponent


def _plain(prefix: str, digits: str, decimal_point: int) -> str:
    if decimal_point <= 0:
        return f"{prefix}0.{'0' * -decimal_point}{digits}"
    if decimal_point >= len(digits):
        return f"{prefix}{digits}{'0' * (decimal_point - len(digits))}"
    return f"{prefix}{digits[:decimal_point]}.{digits[decimal_point:]}"


def _exponent(prefix: str, digits: str, exp10: int, min_exp_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp10 < 0 else "+"
    return f"{prefix}{mantissa}e{sign}{abs(exp10):0{min_exp_digits}d}"


def _non_finite(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return None


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form below 1e-4 or from 1e+06."""
    special = _non_finite(value)
    if special is not None:
        return special
    prefix, digits, decimal_point = _shortest_digits(value)
    exp10 = decimal_point - 1
    if exp10 < -4 or exp10 >= 6:
        return _exponent(prefix, digits, exp10, 2)
    return _plain(prefix, digits, decimal_point)


def _json_float(value: float) -> str:
    """``encoding/json``'s float64: plain from 1e-6 to below 1e21, else ``1e-07`` as ``1e-7``."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {go_float(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    prefix, digits, decimal_point = _shortest_digits(value)
    if 1e-6 <= abs(value) < 1e21:
        return _plain(prefix, digits, decimal_point)
    return _exponent(prefix, digits, decimal_point - 1, 1)


def go_syntax(value: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value held in an ``interface{}`` (sorted map keys)."""
    if isinstance(value, GoSyntax):
        return value.text
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_syntax(v) for v in value) + "}"
    if isinstance(value, dict):
        entries = ", ".join(f"{go_quote(k)}:{go_syntax(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + entries + "}"
    return repr(value)


def string_slice(values: list[str]) -> GoSyntax:
    """A typed ``[]string`` (``[]string{"a", "b"}``), e.g. a built-in's finalizers."""
    return GoSyntax("[]string{" + ", ".join(go_quote(v) for v in values) + "}")


def string_map(mapping: dict[str, str]) -> GoSyntax:
    """A typed ``map[string]string`` (``map[string]string{"k":"v"}``), keys sorted."""
    pairs = ", ".join(f"{go_quote(k)}:{go_quote(mapping[k])}" for k in sorted(mapping))
    return GoSyntax("map[string]string{" + pairs + "}")


def bad_value(value: Any) -> str:
    """A ``field.Error``'s bad value as ``ErrorBody()`` prints it (nil: ``"null"``, quoted)."""
    if value is None:
        return go_quote("null")
    if isinstance(value, str):
        return go_quote(value)
    return go_syntax(value)


def go_json(value: Any) -> str:
    """Go's ``json.Marshal`` of a decoded JSON value."""
    return "".join(_json_parts(value))


def _json_parts(value: Any) -> list[str]:
    if isinstance(value, float):
        return [_json_float(value)]
    if isinstance(value, list):
        parts = ["["]
        for position, item in enumerate(value):
            if position:
                parts.append(",")
            parts.extend(_json_parts(item))
        parts.append("]")
        return parts
    if isinstance(value, dict):
        parts = ["{"]
        for position, key in enumerate(sorted(value)):
            if position:
                parts.append(",")
            parts.append(_json_string(str(key)) + ":")
            parts.extend(_json_parts(value[key]))
        parts.append("}")
        return parts
    if isinstance(value, str):
        return [_json_string(value)]
    return [json.dumps(value)]


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f<>&\u2028\u2029]')
"""What Go's encoder writes escaped in a string: quotes, backslashes, control and HTML chars."""


def _json_string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'  # the common case: nothing that Go's encoder escapes
    encoded = json.dumps(text, ensure_ascii=False)
    for raw, escaped in _JSON_HTML_ESCAPES:
        encoded = encoded.replace(raw, escaped)
    return encoded


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (JSON numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality that keeps ``true`` apart from ``1`` (``1`` and ``1.0`` are equal)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def json_type_name(value: Any) -> str:
    """The JSON type names used in Go's ``cannot unmarshal X into ...`` messages."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"
