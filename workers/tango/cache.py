"""A small per-process TTL cache for TANGO probe answers.

Filled by :class:`workers.tango.port.PyTangoPort` with the answers of ``database_alive``,
``device_ready`` and the export flags behind ``unexported_devices``; read back by the same
process while an entry is younger than ``ttl`` seconds. A storm of reconciles that all
depend on one device (or one TANGO host) then costs one round trip per TTL, not one per
reconcile. Thread-safe, bounded (least recently stored entries go first), stdlib only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """``get_or_compute(key, compute)``: a fresh cached value, else ``compute()`` stored.

    ``ttl <= 0`` disables caching (every call computes). ``ttl_of(value)``, when given,
    chooses the lifetime of each stored value (e.g. shorter for "not ready" answers), capped
    at ``ttl``. Concurrent callers asking for the same missing key may each compute it once;
    correctness never depends on the cache, only the number of round trips does.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 4096,
        ttl_of: Callable[[V], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._ttl_of = ttl_of
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """Return the fresh cached value of ``key``, else compute, store and return it."""
        if self.ttl <= 0:
            self.misses += 1
            return compute()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self.hits += 1
                return entry[1]
            self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value`` under ``key`` for its lifetime (not at all when that is 0 or less)."""
        ttl = self.ttl if self._ttl_of is None else min(self.ttl, self._ttl_of(value))
        if ttl <= 0:
            return
        expires = self._clock() + ttl
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (expires, value)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key matches (e.g. all answers about one TANGO host)."""
        with self._lock:
            for key in [key for key in self._entries if predicate(key)]:
                del self._entries[key]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
