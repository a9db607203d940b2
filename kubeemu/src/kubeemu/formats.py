"""String formats of custom resource schemas (``format: date-time``, ``ipv4``, ``uuid``...).

``kubeemu.schema_validation`` asks :func:`supported_format` which declared formats the
apiextensions-apiserver keeps (it strips the others before validating) and
:func:`check_format` whether a string value has its format; a mismatch is reported as
kube-openapi words it (``spec.x in body must be of type ipv4: "1.2.3"``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from kubeemu.fielderrors import TYPE_INVALID, Cause, field_cause
from kubeemu.goformat import go_quote

_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID4 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
)
_UUID5 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
)
_TIME_OF_DAY = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HEX_COLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

# The formats the apiextensions-apiserver keeps (others are stripped before validation), as
# normalized names (dashes removed).  Formats without a checker here are accepted as they come.
_SUPPORTED_FORMATS = frozenset(
    {
        *("bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac"),
        *("uuid", "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn"),
        *("hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime"),
    }
)


def supported_format(declared: Any) -> str:
    """The declared format if the apiserver keeps it, else ``""`` (it strips the others)."""
    if not isinstance(declared, str) or not declared:
        return ""
    return declared if declared.replace("-", "") in _SUPPORTED_FORMATS else ""


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _TIME_OF_DAY.match(parts[1])
    if match is None:
        return False
    return match.group(1) <= "23" and match.group(2) <= "59" and match.group(3) <= "59"


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except ValueError:
        return False
    return True


def _is_ip(text: str, separator: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return separator in text


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_hostname(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return 0 < len(text) <= 255 and all(_HOSTNAME_LABEL.match(label) for label in labels)


def _is_uri(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text)) or text.startswith("/")


_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_base64,
    "uuid": lambda text: bool(_UUID.match(text)),
    "uuid3": lambda text: bool(_UUID3.match(text)),
    "uuid4": lambda text: bool(_UUID4.match(text)),
    "uuid5": lambda text: bool(_UUID5.match(text)),
    "ipv4": lambda text: _is_ip(text, "."),
    "ipv6": lambda text: _is_ip(text, ":"),
    "cidr": _is_cidr,
    "mac": lambda text: bool(_MAC.match(text)),
    "hostname": _is_hostname,
    "hexcolor": lambda text: bool(_HEX_COLOR.match(text)),
    "email": lambda text: bool(_EMAIL.match(text)),
    "uri": _is_uri,
}


def check_format(value: str, value_format: str, path: str, causes: list[Cause]) -> None:
    check = _FORMAT_CHECKS.get(value_format.replace("-", ""))
    if check is not None and not check(value):
        detail = f"{path} in body must be of type {value_format}: {go_quote(value)}"
        causes.append(field_cause(path, TYPE_INVALID, detail, value=value))
