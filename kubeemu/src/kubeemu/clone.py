"""Deep copies of JSON documents, the emulator's most frequent operation.

Every object the emulator holds came from JSON (or YAML decoded to the same types), so a
JSON round trip copies it exactly — and, measured on stored StatefulSets, several times
faster than ``copy.deepcopy``, which dominated the request profile.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

T = TypeVar("T")

_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode


def clone(document: T) -> T:
    """A deep copy of a JSON-compatible value (dicts, lists, strings, numbers, bools, None)."""
    if document is None or isinstance(document, str | int | float | bool):
        return document
    copied: Any = _decode(_encode(document))
    return copied  # type: ignore[no-any-return]
