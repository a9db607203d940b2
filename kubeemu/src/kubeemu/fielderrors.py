"""Field paths and ``field.Error`` causes, as k8s.io/apimachinery's ``field`` package words them.

Every validator (``kubeemu.validation`` for built-ins, ``kubeemu.schema_validation`` for custom
resources, ``kubeemu.crds`` for CRDs) reports ``(field, reason, message)`` causes built here;
``kubeemu.errors.invalid`` turns them into the 422 ``Invalid`` Status.  A message is upstream's
``field.Error.ErrorBody()``: ``Invalid value: "x": detail``, ``Required value``, ``Forbidden:
detail``, ``Too long: ...``, with the bad value printed by ``kubeemu.goformat.bad_value``.
"""

from __future__ import annotations

from typing import Any

from kubeemu.goformat import bad_value

Cause = tuple[str, str, str]

# field.ErrorType -> (StatusCause reason, message prefix), as in k8s.io/apimachinery field errors.
REQUIRED = ("FieldValueRequired", "Required value")
INVALID = ("FieldValueInvalid", "Invalid value")
TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
TOO_LONG = ("FieldValueTooLong", "Too long")
TOO_MANY = ("FieldValueTooMany", "Too many")


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index_path(path: str, position: int) -> str:
    return f"{path}[{position}]"


def key_path(path: str, key: str) -> str:
    return f"{path}[{key}]"


def field_cause(path: str, kind: tuple[str, str], detail: str = "", *, value: Any = None) -> Cause:
    reason, prefix = kind
    body = prefix if kind in (REQUIRED, TOO_LONG) else f"{prefix}: {bad_value(value)}"
    if detail:
        body += f": {detail}"
    return (path, reason, body)


def invalid(field: str, value: Any, detail: str) -> Cause:
    """``field.Invalid``; a typed Go value (``[]string``...) comes as a ``goformat.GoSyntax``."""
    return (field, "FieldValueInvalid", f"Invalid value: {bad_value(value)}: {detail}")


def required(field: str, detail: str = "") -> Cause:
    return (field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def forbidden(field: str, detail: str) -> Cause:
    return (field, "FieldValueForbidden", f"Forbidden: {detail}")


def too_long(field: str, max_bytes: int) -> Cause:
    return (field, "FieldValueTooLong", f"Too long: must have at most {max_bytes} bytes")
