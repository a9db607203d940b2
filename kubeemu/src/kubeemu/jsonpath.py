"""The JSONPath subset of CRD printer columns, and how kubectl's JSONPath prints a value.

``kubeemu.table`` evaluates a column's ``jsonPath`` (``.status.replicas``,
``.status.conditions[?(@.type=="Ready")].status``) against a served object with
:func:`evaluate` and turns the first result into a cell; :func:`print_value` renders it as
``k8s.io/client-go/util/jsonpath`` prints text (numbers as Go prints them, objects and lists
as compact JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubeemu.goformat import go_float, go_json

_FILTER = re.compile(r"^@((?:\.[^.=!<>\s]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


def evaluate(path: str, obj: Any) -> list[Any]:
    """All values ``path`` selects in ``obj`` (missing keys select nothing).

    Supports ``.field``, ``['field']``, ``[n]``, ``[-n]``, ``[*]``, ``.*`` and filters
    ``[?(@.a.b == "x")]`` with ``== != < <= > >=`` or a bare ``[?(@.a)]`` existence test.
    Raises ValueError on syntax it does not understand.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    current = [obj]
    for step in _tokenize(text):
        current = [found for value in current for found in _apply_step(step, value)]
    return current


def _tokenize(path: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    position = 0
    while position < len(path):
        char = path[position]
        if char == ".":
            match = re.match(r"[^.\[]+", path[position + 1 :])
            if match is None:
                raise ValueError(f"unexpected path string: {path!r}")
            name = match.group(0)
            steps.append(("wildcard", "") if name == "*" else ("field", name))
            position += 1 + len(name)
        elif char == "[":
            end = _closing_bracket(path, position)
            steps.append(_bracket_step(path[position + 1 : end]))
            position = end + 1
        elif char == "$" and position == 0:
            position += 1
        else:
            raise ValueError(f"unrecognized character in path: {char!r}")
    return steps


def _closing_bracket(path: str, start: int) -> int:
    depth = 0
    quote = ""
    for position in range(start, len(path)):
        char = path[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                return position
    raise ValueError(f"unclosed bracket in path: {path!r}")


def _bracket_step(inner: str) -> tuple[str, str]:
    inner = inner.strip()
    if inner == "*":
        return ("wildcard", "")
    if inner.startswith("?(") and inner.endswith(")"):
        return ("filter", inner[2:-1].strip())
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return ("index", inner)
    raise ValueError(f"unsupported subscript: [{inner}]")


def _apply_step(step: tuple[str, str], value: Any) -> list[Any]:
    kind, argument = step
    if kind == "field":
        return [value[argument]] if isinstance(value, dict) and argument in value else []
    if kind == "wildcard":
        if isinstance(value, dict):
            return [value[key] for key in sorted(value)]
        return list(value) if isinstance(value, list) else []
    if kind == "index":
        if not isinstance(value, list):
            return []
        position = int(argument)
        position = position + len(value) if position < 0 else position
        return [value[position]] if 0 <= position < len(value) else []
    if not isinstance(value, list):
        return []
    return [item for item in value if _filter_matches(argument, item)]


def _filter_matches(expression: str, item: Any) -> bool:
    match = _FILTER.match(expression)
    if match is None:
        raise ValueError(f"unsupported filter: {expression!r}")
    fields, operator, literal = match.groups()
    found = [item]
    for name in [part for part in fields.split(".") if part]:
        found = [v[name] for v in found if isinstance(v, dict) and name in v]
    if not found:
        return False
    if operator is None:
        return True
    return _compare(found[0], operator, _literal(literal))


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError as error:
        raise ValueError(f"unsupported filter literal: {text!r}") from error


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator in ("==", "!="):
        equal = type(left) is type(right) and bool(left == right)
        if isinstance(left, int | float) and isinstance(right, int | float):
            equal = not isinstance(left, bool) and bool(left == right)
        return equal if operator == "==" else not equal
    if not (isinstance(left, int | float) and isinstance(right, int | float)):
        return False
    comparisons: dict[str, Callable[[float, float], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return comparisons[operator](left, right)


def print_value(value: Any) -> str:
    """JSONPath printing: text as is, numbers like Go, objects and lists as compact JSON."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict | list):
        return go_json(value)
    return str(value)
