"""JSON text on the operator's hot paths, through orjson (a maintained, compiled JSON library).

Where data comes from and goes: the API server's answers and watch events become dicts for
the watcher (``watcher.kube``) and the reconcilers (``workers.kube``); keys, ledger records,
owner copies and fingerprints become compact strings for Redis and for comparison
(``tango_operator.keys``, ``tango_operator.observed``, ``tango_operator.workqueue.ledger``,
``watcher.mapping``).

Why not the standard library: in the profile of docs/benchmarks.md ("Where a reconcile's
CPU goes") ``json`` took about a sixth of the watcher's CPU (mostly decoding watch events)
and a tenth of a worker's. orjson decodes a StatefulSet's watch event about 2.4 times and
writes a manifest with sorted keys about 9 times faster on the benchmark machine.

The text is the same as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
(``sort_keys=True`` when asked) for strings, booleans, null, integers within 64 bits and
containers of them; floats are written in their shortest form, as by ``repr``, except that an
exponent has no ``+`` and no leading zero (``1e16``, not ``1e+16``). What orjson refuses to
write (a dict key that is not a string, an integer beyond 64 bits, a string with a lone
surrogate) is written by the standard library instead, so ``dumps`` accepts what ``json``
accepts. ``loads`` gives ``json.loads``'s value or exception: text holding a run of 19 digits
or more (an integer orjson would read as a float, losing digits: a CR's ``config`` may hold
one) and text orjson rejects are read by the standard library. kubeemu reads request bodies
by the same rule (``kubeemu/src/kubeemu/jsonio.py``; neither package may import the other).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
"""A run of 19 digits, once every digit is a 0: two C loops over the bytes, several times
faster than ``re``'s ``\\d{19}`` (about 1 µs per KiB here, against orjson's 2 µs)."""


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text of ``value``, its non-ASCII characters as they are (not escaped)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def dump_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value`` for a request body (the wire, not a stored text).

    What orjson refuses (an integer beyond 64 bits, a lone surrogate) is written by ``json``
    with its non-ASCII characters escaped, so the bytes are always valid UTF-8.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def loads(text: bytes | bytearray | str) -> Any:
    """``json.loads(text)``: the same value, or the same exception (a ``ValueError``)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if _LONG_NUMBER not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
