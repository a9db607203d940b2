"""Label and field selectors, parsed and matched the way the Kubernetes 1.31 apiserver does.

Input comes from the ``labelSelector``/``fieldSelector`` query parameters of list and watch requests
and from ``LabelSelector`` objects (``matchLabels``/``matchExpressions``) in workload specs.  The
grammar and the error texts follow upstream's ``k8s.io/apimachinery/pkg/labels`` lexer/parser and
``k8s.io/apimachinery/pkg/fields`` parser; a malformed selector raises the 400 ``BadRequest`` that
the list handler returns.  Matching reads plain JSON objects (dotted field paths) so the store can
filter lists and watch events directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeemu import errors
from kubeemu.goformat import go_quote, string_slice
from kubeemu.names import label_value_errors, qualified_name_errors

JsonDict = dict[str, Any]


# --- label selectors ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """One ``key op values`` term; ``op`` is in, notin, =, ==, !=, exists, !, gt or lt."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "==", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        return present and _compare_integers(str(value), self.operator, self.values[0])


def _compare_integers(value: str, operator: str, bound: str) -> bool:
    try:
        actual, limit = int(value), int(bound)
    except ValueError:
        return False
    return actual > limit if operator == "gt" else actual < limit


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        actual = labels or {}
        return all(requirement.matches(actual) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.matches_nothing


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(matches_nothing=True)

_IDENTIFIER, _IN, _NOT_IN, _OPEN, _CLOSE, _COMMA = "id", "in", "notin", "(", ")", ","
_EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS, _NOT, _GT, _LT, _END = "=", "==", "!=", "!", ">", "<", "end"
_ERROR = "error"
_SPECIAL_TOKENS = {"=": _EQUALS, "==": _DOUBLE_EQUALS, "!=": _NOT_EQUALS, "!": _NOT}
_SPECIAL_TOKENS |= {"(": _OPEN, ")": _CLOSE, ",": _COMMA, ">": _GT, "<": _LT}
_SPECIAL_CHARS = frozenset("=!(),><")
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _scan_special(text: str, start: int) -> tuple[str, str, int]:
    """The longest special-symbol token at ``start`` (upstream's ``scanSpecialSymbol``)."""
    best: tuple[str, str, int] | None = None
    position = start
    while position < len(text) and text[position] in _SPECIAL_CHARS:
        position += 1
        candidate = text[start:position]
        if candidate in _SPECIAL_TOKENS:
            best = (_SPECIAL_TOKENS[candidate], candidate, position)
        elif best is not None:
            break
    if best is None:
        return _ERROR, f"error expected: keyword found '{text[start:position]}'", position
    return best


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char in _SPECIAL_CHARS:
            kind, literal, position = _scan_special(text, position)
            tokens.append((kind, literal))
        else:
            end = position
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL_CHARS:
                end += 1
            word = text[position:end]
            tokens.append(({"in": _IN, "notin": _NOT_IN}.get(word, _IDENTIFIER), word))
            position = end
    tokens.append((_END, ""))
    return tokens


class _LabelParser:
    """Recursive-descent parser mirroring upstream's ``labels.Parser`` and its messages."""

    def __init__(self, text: str):
        self._tokens = _lex(text)
        self._position = 0

    def _lookahead(self, values: bool = True) -> tuple[str, str]:
        kind, literal = self._tokens[self._position]
        return (_IDENTIFIER if values and kind in (_IN, _NOT_IN) else kind), literal

    def _consume(self, values: bool = True) -> tuple[str, str]:
        token = self._lookahead(values)
        self._position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._lookahead()
            if kind == _END:
                return requirements
            if kind not in (_IDENTIFIER, _NOT):
                raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except ValueError as err:
                raise ValueError(f"unable to parse requirement: {err}") from None
            kind, literal = self._consume()
            if kind == _END:
                return requirements
            if kind != _COMMA:
                raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
            next_kind, next_literal = self._lookahead()
            if next_kind not in (_IDENTIFIER, _NOT):
                raise ValueError(f"found '{next_literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator in ("exists", "!"):
            return _new_requirement(key, operator, [])
        operator = self._operator()
        values = self._set_values() if operator in ("in", "notin") else self._exact_value()
        return _new_requirement(key, operator, sorted(set(values)))

    def _key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        kind, literal = self._consume()
        if kind == _NOT:
            operator = "!"
            kind, literal = self._consume()
        if kind != _IDENTIFIER:
            raise ValueError(f"found '{literal}', expected: identifier")
        key_error = _label_key_error(literal, "<nil>")
        if key_error:
            raise ValueError(key_error)
        if self._lookahead()[0] in (_END, _COMMA) and operator != "!":
            operator = "exists"
        return literal, operator

    def _operator(self) -> str:
        kind, literal = self._consume(values=False)
        operators = {_IN: "in", _NOT_IN: "notin", _EQUALS: "=", _DOUBLE_EQUALS: "=="}
        operators |= {_NOT_EQUALS: "!=", _GT: "gt", _LT: "lt"}
        if kind not in operators:
            raise ValueError(f"found '{literal}', expected: {_BINARY_OPERATORS}")
        return operators[kind]

    def _set_values(self) -> list[str]:
        kind, literal = self._consume()
        if kind != _OPEN:
            raise ValueError(f"found '{literal}' expected: '('")
        kind, literal = self._lookahead()
        if kind == _CLOSE:
            self._consume()
            return [""]
        if kind not in (_IDENTIFIER, _COMMA):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self._consume()[0] != _CLOSE:
            raise ValueError(f"found '{literal}', expected: ')'")
        return values

    def _identifier_list(self) -> list[str]:
        values: list[str] = []
        while True:
            kind, literal = self._consume()
            if kind == _IDENTIFIER:
                values.append(literal)
                next_kind, next_literal = self._lookahead()
                if next_kind == _CLOSE:
                    return values
                if next_kind != _COMMA:
                    raise ValueError(f"found '{next_literal}', expected: ',' or ')'")
            elif kind == _COMMA:
                if not values:
                    values.append("")
                next_kind, _ = self._lookahead()
                if next_kind == _CLOSE:
                    values.append("")
                    return values
                if next_kind == _COMMA:
                    self._consume()
                    values.append("")
            else:
                raise ValueError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> list[str]:
        kind, _ = self._lookahead()
        if kind in (_END, _COMMA):
            return [""]
        kind, literal = self._consume()
        if kind == _IDENTIFIER:
            return [literal]
        raise ValueError(f"found '{literal}', expected: identifier")


def _label_key_error(key: str, field: str) -> str:
    problems = qualified_name_errors(key)
    if not problems:
        return ""
    return f"{field}: Invalid value: {go_quote(key)}: {'; '.join(problems)}"


def _new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """Upstream ``NewRequirement``: arity and value checks, errors aggregated like Go's."""
    problems: list[str] = []
    key_error = _label_key_error(key, "key")
    if key_error:
        problems.append(key_error)
    if operator in ("in", "notin") and not values:
        problems.append(
            f"values: Invalid value: {string_slice(values)}: "
            "for 'in', 'notin' operators, values set can't be empty"
        )
    if operator in ("=", "==", "!=") and len(values) != 1:
        problems.append(
            f"values: Invalid value: {string_slice(values)}: "
            "exact-match compatibility requires one single value"
        )
    if operator in ("gt", "lt"):
        for index, value in enumerate(values):
            if not re.fullmatch(r"[+-]?[0-9]+", value):
                problems.append(
                    f"values[{index}]: Invalid value: {go_quote(value)}: "
                    "for 'Gt', 'Lt' operators, the value must be an integer"
                )
    for index, value in enumerate(values):
        value_problems = label_value_errors(value)
        if value_problems:
            problems.append(
                f"values[{index}][{key}]: Invalid value: {go_quote(value)}: "
                + "; ".join(value_problems)
            )
    if problems:
        raise ValueError(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")
    return Requirement(key, operator, tuple(values))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value; a malformed one raises 400 BadRequest."""
    try:
        requirements = _LabelParser(text).parse()
    except ValueError as err:
        raise errors.bad_request(str(err)) from None
    ordered = sorted(requirements, key=lambda requirement: requirement.key)
    return LabelSelector(tuple(ordered))


_EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_from_dict(selector: JsonDict | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` object as upstream's ``LabelSelectorAsSelector`` reads it.

    ``None`` selects nothing and ``{}`` everything.  Invalid content raises ``ValueError`` (the
    spec validation reports it as a 422; this function only builds the matcher).
    """
    if selector is None:
        return NOTHING
    requirements: list[Requirement] = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        requirements.append(_new_requirement(key, "=", [str(value)]))
    for expression in selector.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS.get(str(expression.get("operator")))
        if operator is None:
            quoted = go_quote(str(expression.get("operator")))
            raise ValueError(f"{quoted} is not a valid label selector operator")
        values = [str(value) for value in expression.get("values") or []]
        requirements.append(_new_requirement(str(expression.get("key", "")), operator, values))
    return LabelSelector(tuple(sorted(requirements, key=lambda requirement: requirement.key)))


# --- field selectors ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldTerm:
    """One ``field=value`` / ``field!=value`` term of a field selector."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: JsonDict) -> bool:
        actual = field_value(obj, self.field)
        return (actual != self.value) if self.negated else (actual == self.value)


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of ``field=value``/``field!=value`` terms."""

    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: JsonDict) -> bool:
        return all(term.matches(obj) for term in self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    def required_value(self, field: str) -> str | None:
        """The value an ``=`` term pins ``field`` to (e.g. ``metadata.name`` for named watches)."""
        for term in self.terms:
            if term.field == field and not term.negated:
                return term.value
        return None


# A field label whose value is not simply the JSON value at the same dotted path.
_FIELD_PATHS = {"source": "source.component"}
_BOOLEAN_DEFAULT_FALSE = frozenset({"spec.hostNetwork"})


def field_value(obj: JsonDict, field: str) -> str:
    """The string a field selector compares: ``""`` for an absent field, Go's bool/int text."""
    current: Any = obj
    for step in _FIELD_PATHS.get(field, field).split("."):
        current = current.get(step) if isinstance(current, dict) else None
    if current is None:
        return "false" if field in _BOOLEAN_DEFAULT_FALSE else ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    start, position = 0, 0
    while position < len(text):
        if text[position] == "\\":
            position += 2
            continue
        if text[position] == ",":
            terms.append(text[start:position])
            start = position + 1
        position += 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    position = 0
    while position < len(term):
        if term[position] == "\\":
            position += 2
            continue
        for operator in ("!=", "==", "="):
            if term.startswith(operator, position):
                return term[:position], operator, term[position + len(operator) :]
        position += 1
    return None


def _unescape(value: str) -> str:
    if not any(char in value for char in "\\,="):
        return value
    out: list[str] = []
    position = 0
    while position < len(value):
        char = value[position]
        if char == "\\":
            if position + 1 >= len(value):
                raise ValueError("invalid field selector: invalid escape sequence: \\")
            following = value[position + 1]
            if following not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{following}")
            out.append(following)
            position += 2
            continue
        if char in ",=":
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(char)}")
        out.append(char)
        position += 1
    return "".join(out)


_METADATA_ONLY = frozenset({"metadata.name", "metadata.namespace"})
# Resources whose conversion registers its own field-label function (so an unknown label reads
# "field label not supported: X"); every other built-in falls back to upstream's
# DefaultMetaV1FieldSelectorConversion and its "is not a known field selector" text.
_SUPPORTED_FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): _METADATA_ONLY
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    },
    ("", "events"): _METADATA_ONLY
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    ("events.k8s.io", "events"): _METADATA_ONLY
    | {
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    },
    ("", "secrets"): _METADATA_ONLY | {"type"},
    ("", "namespaces"): frozenset({"metadata.name", "status.phase"}),
    ("", "nodes"): frozenset({"metadata.name", "spec.unschedulable"}),
    ("", "persistentvolumes"): frozenset({"metadata.name"}),
    ("", "replicationcontrollers"): _METADATA_ONLY | {"status.replicas"},
    ("apps", "replicasets"): _METADATA_ONLY | {"status.replicas"},
    ("batch", "jobs"): _METADATA_ONLY | {"status.successful"},
    ("certificates.k8s.io", "certificatesigningrequests"): frozenset(
        {"metadata.name", "spec.signerName"}
    ),
}


def supported_field_labels(group: str, resource: str) -> frozenset[str]:
    """The field labels a built-in resource accepts in ``fieldSelector``."""
    return _SUPPORTED_FIELD_LABELS.get((group, resource), _METADATA_ONLY)


def unsupported_field_label_message(group: str, resource: str, label: str) -> str:
    """The 400 text for ``label``; built-ins without their own conversion use the generic one."""
    if (group, resource) in _SUPPORTED_FIELD_LABELS or not resource:
        return f"field label not supported: {label}"
    return (
        f"{go_quote(label)} is not a known field selector: only "
        '"metadata.name", "metadata.namespace"'
    )


def parse_field_selector(
    text: str, *, allowed: frozenset[str], group: str | None = None, resource: str | None = None
) -> FieldSelector:
    """Parse a ``fieldSelector`` query value (``=``, ``==``, ``!=``, comma = AND).

    A syntax error or a label outside ``allowed`` raises 400 BadRequest.  ``group``/``resource``
    only choose upstream's wording for an unsupported label (see
    :func:`unsupported_field_label_message`); without them it is ``field label not supported: X``
    (the text of custom resources and of most built-ins that have extra labels).
    """
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        label, operator, raw_value = split
        try:
            value = _unescape(raw_value)
        except ValueError as err:
            raise errors.bad_request(str(err)) from None
        terms.append(FieldTerm(label, value, negated=operator == "!="))
    for term in terms:
        if term.field not in allowed:
            message = (
                unsupported_field_label_message(group, resource, term.field)
                if group is not None and resource is not None
                else f"field label not supported: {term.field}"
            )
            raise errors.bad_request(message)
    return FieldSelector(tuple(terms))
