"""The child ledger in Redis: what the watcher saw of each child and what a worker applied.

One HASH per owner (``ledger:<Key.encode()>``) with three fields per child (``Kind/name``):
``seen:`` (a ``ChildState`` as JSON, written by the watcher from watch events, or by a
worker from its apply answer when the watcher has not recorded the child yet),
``intended:`` (the digest a worker applies, written before the request) and ``applied:``
(the version the API server answered). The rules that read them are
``tango_operator.observed``: ``needs_reconcile`` for the watcher (``observe``),
``is_current`` for the workers (``records``). A flushed Redis only costs writes: an unknown
child is applied again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis import Redis

from tango_operator.keys import Key
from tango_operator.observed import ChildRecord, ChildState, needs_reconcile
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded

SEEN, INTENDED, APPLIED = "seen:", "intended:", "applied:"


class RedisChildLedger:
    """The child ledger on one Redis, under ``prefix``."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    def _name(self, owner: Key) -> str:
        return f"{self.prefix}ledger:{owner.encode()}"

    def observe(self, owner: Key, child: str, state: ChildState | None) -> bool:
        """Record a watch event of ``child`` (None: deleted); True if the owner must look.

        The watcher is the only writer of what is seen (a worker only fills it in while it
        is absent, ``applied``), so a read and a write suffice: a worker's ``intend`` in
        between makes this at worst one reconcile too many.
        """
        name = self._name(owner)
        raw_seen, raw_intended = cast(
            list[Any], self.redis.hmget(name, [SEEN + child, INTENDED + child])
        )
        previous = ChildState.decode(raw_seen) if raw_seen else None
        intended = decoded(raw_intended) if raw_intended else None
        if state is None:
            self.redis.hdel(name, SEEN + child, INTENDED + child, APPLIED + child)
        elif previous is None or previous.encode() != state.encode():
            self.redis.hset(name, SEEN + child, state.encode())
        return needs_reconcile(previous, state, intended)

    def records(self, owner: Key) -> dict[str, ChildRecord]:
        """Every child's record, by ``Kind/name``."""
        raw = cast(Mapping[Any, Any], self.redis.hgetall(self._name(owner)))
        fields: dict[str, dict[str, str]] = {}
        for field, value in raw.items():
            prefix, _, child = decoded(field).partition(":")
            fields.setdefault(child, {})[prefix + ":"] = decoded(value)
        return {
            child: ChildRecord(
                seen=ChildState.decode(values[SEEN]) if SEEN in values else None,
                intended=values.get(INTENDED),
                applied_version=values.get(APPLIED),
            )
            for child, values in fields.items()
        }

    def intend(self, owner: Key, digests: Mapping[str, str]) -> None:
        """Record the digests about to be applied (before the requests)."""
        if digests:
            self.redis.hset(
                self._name(owner), mapping={INTENDED + c: d for c, d in digests.items()}
            )

    def applied(self, owner: Key, child: str, state: ChildState) -> None:
        """Record the answer to an apply: its version, and what was seen if nothing was."""
        name = self._name(owner)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, APPLIED + child, state.version)
            pipe.hsetnx(name, SEEN + child, state.encode())
            pipe.execute()

    def forget(self, owner: Key) -> None:
        """Drop everything about ``owner``'s children (the owner is gone)."""
        self.redis.delete(self._name(owner))
