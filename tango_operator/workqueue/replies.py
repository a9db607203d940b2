"""Redis replies as text, for every module of the work queue.

redis-py answers bytes unless its client decodes, and the operator's clients do not (the
queue's members are stored as the UTF-8 of ``Key.encode()``).
"""

from __future__ import annotations

from typing import Any


def decoded(value: Any) -> str:
    """A reply (bytes, or already a string or number) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
