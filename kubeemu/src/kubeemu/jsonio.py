"""JSON in and out of the emulator: orjson (C) wherever it gives the standard library's result.

Request bodies are decoded and responses and watch events encoded on every request; orjson
does both several times faster than the ``json`` module.  It is used only where its result is
the standard library's: anything it refuses to encode (an integer beyond 64 bits, a
non-string key, a lone surrogate) or to decode (``NaN``, ``1e400``, a byte order mark, a lone
surrogate escape, UTF-16) goes to the ``json`` module, and so does any text holding a run of
19 digits or more, an integer that orjson would read as a float.  Encoded JSON is compact, as
before; orjson writes non-ASCII characters as UTF-8 where ``json`` wrote escapes (the
same JSON text to every parser).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_NUMBER_TEXT = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def dumps(value: Any) -> bytes:
    """Compact JSON of ``value`` (``json.dumps(value, separators=(",", ":"))``), as UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":")).encode()


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: the same value, or the same exception."""
    long_number = (
        _LONG_NUMBER_BYTES.search(text)
        if isinstance(text, bytes)
        else _LONG_NUMBER_TEXT.search(text)
    )
    if long_number is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
