"""Timestamps and ages as the apiserver's table printers show them.

Parses ``metav1.Time`` (RFC 3339) strings from served objects and renders ages with
``k8s.io/apimachinery/pkg/util/duration.HumanDuration`` (``45s``, ``3m10s``, ``2d3h``);
``kubeemu.table`` and ``kubeemu.printers`` put the results into Table cells.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

JsonDict = dict[str, Any]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time``), or None when it is not one."""
    if not _RFC3339.match(text):
        return None
    normalized = text.upper().replace("Z", "+00:00")
    if "." in normalized:
        head, rest = normalized.split(".", 1)
        digits = re.match(r"\d+", rest)
        fraction = digits.group(0) if digits else ""
        normalized = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ``45s``, ``3m10s``, ``5h``, ``2d3h``, ``3y``..."""
    whole_seconds = int(seconds)
    if whole_seconds < -1:
        return "<invalid>"
    if whole_seconds < 0:
        return "0s"
    if whole_seconds < 60 * 2:
        return f"{whole_seconds}s"
    minutes = whole_seconds // 60
    if minutes < 10:
        rest = whole_seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole_seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def human_age(moment: datetime, now: datetime) -> str:
    """The age of a timestamp as printed in tables; the zero time is ``<unknown>``."""
    if moment.year == 1 and moment.month == 1 and moment.day == 1:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def age_of(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` when unset."""
    moment = parse_timestamp(value) if isinstance(value, str) else None
    return "<unknown>" if moment is None else human_age(moment, now)
