"""The request audit log: one record per API request the emulator served.

The HTTP layer appends a record when a request finishes (or fails); tests and benchmarks read the
records through the admin API (``GET /_emu/audit``) to count API calls and mutations — e.g. "a
re-reconcile of an unchanged object made zero writes".
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_CAPACITY = 500_000


@dataclass
class AuditRecord:
    """What one request did: verb, target, field manager and whether it changed anything."""

    seq: int
    time: float
    verb: str
    method: str
    path: str
    group: str
    resource: str
    namespace: str
    name: str
    subresource: str
    field_manager: str
    user_agent: str
    code: int
    rv_before: str
    rv_after: str
    changed: bool
    injected: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """A bounded, sequence-numbered log (the oldest records fall off first)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self._records: deque[AuditRecord] = deque(maxlen=capacity)
        self._next_seq = 0

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def append(self, record: AuditRecord) -> None:
        self._records.append(record)

    def since(self, seq: int, limit: int | None = None) -> list[AuditRecord]:
        selected = [r for r in self._records if r.seq >= seq]
        return selected[:limit] if limit is not None else selected

    @property
    def next(self) -> int:
        return self._next_seq

    def clear(self) -> None:
        self._records.clear()
