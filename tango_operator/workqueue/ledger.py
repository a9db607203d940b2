"""The child ledger in Redis: what the watcher saw of each owner and child, what a worker applied.

One HASH per owner (``ledger:<Key.encode()>``) with three fields per child (``Kind/name``):
``seen:`` (a ``ChildState`` as JSON, written by the watcher from watch events, or by a
worker from its apply answer when the watcher has not recorded the child yet),
``intended:`` (the digest a worker applies, written before the request) and ``applied:``
(the version the API server answered); a worker that deletes a child drops all three
(``removed``). One more field, ``plan``, holds the ``RenderPlan`` of the worker's last render
(written with the digests it intends), so a pass whose render inputs have not changed can
skip the render (``records_and_plan``). The rules that read them are
``tango_operator.observed``: ``needs_reconcile`` for the watcher (``observe``),
``is_current`` for the workers (``records``). A flushed Redis only costs writes: an unknown
child is applied again.

Next to it, one HASH per owner (``owner:<Key.encode()>``: ``version``, ``object``) holds a copy
of the custom resource itself (``tango_operator.observed.OwnerCopy``), so that a reconcile
need not read it from the API: the watcher records every event of it (``observe_owner``; a
deletion leaves a tombstone, an empty version, kept an hour at most), a worker the answer
to its own writes (``wrote_owner``, only over a copy the watcher made; sent with the
release of the run's lease, ``piggyback``). Both keep the copy with the greatest
resourceVersion, so the copy never goes back in time, and a worker never brings back an
object the watcher saw deleted. A flushed Redis only costs reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from tango_operator import jsontext
from tango_operator.keys import Key
from tango_operator.observed import (
    OWNER_DELETED,
    OWNER_UNKNOWN,
    ChildRecord,
    ChildState,
    OwnerCopy,
    RenderPlan,
    needs_reconcile,
    owner_copy_of,
    owner_version,
)
from tango_operator.workqueue.piggyback import ScriptCall, WriteBehind
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded

JsonDict = dict[str, Any]

SEEN, INTENDED, APPLIED = "seen:", "intended:", "applied:"
PLAN = "plan"
# KEYS: the ledger.  ARGV: seen field, intended field, applied field, state ('' = deleted).
# Records the state (a deletion drops all three fields); answers what was seen and intended.
OBSERVE = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
local intended = redis.call('HGET', KEYS[1], ARGV[2])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
elseif seen ~= ARGV[4] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
end
return {seen, intended}
"""

TOMBSTONE_SECONDS = 3600
"""How long the tombstone of a deleted owner is kept if no reconcile clears it."""

# KEYS: the owner's copy.  ARGV: version ('' = deleted, '-' = not orderable), object (JSON).
OWNER_SEEN = """
if ARGV[1] == '-' then
  redis.call('DEL', KEYS[1])
  return 1
end
if ARGV[1] == '' then
  redis.call('HSET', KEYS[1], 'version', '', 'object', '')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
local old = redis.call('HGET', KEYS[1], 'version')
if old and old ~= '' and (#old > #ARGV[1] or (#old == #ARGV[1] and old >= ARGV[1])) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'object', ARGV[2])
redis.call('PERSIST', KEYS[1])
return 1
"""

# KEYS: the owner's copy.  ARGV: version, object (JSON). Only over a newer copy the watcher made.
OWNER_WRITTEN = """
local old = redis.call('HGET', KEYS[1], 'version')
if not old or old == '' or #old > #ARGV[1] or (#old == #ARGV[1] and old >= ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'object', ARGV[2])
return 1
"""

# KEYS: the owner's copy. A tombstone stays: the watcher saw the deletion.
OWNER_DROPPED = """
if redis.call('HGET', KEYS[1], 'version') ~= '' then
  redis.call('DEL', KEYS[1])
end
return 1
"""


class RedisChildLedger:
    """The child ledger on one Redis, under ``prefix``."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        write_behind: WriteBehind | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.write_behind = write_behind or WriteBehind()
        """Where a run's ``wrote_owner`` waits for its lease's release (``piggyback``)."""
        self._local = threading.local()
        """The replies read ahead for this thread's run (``preloaded``)."""
        self._observe = redis.register_script(OBSERVE)
        self._owner_seen = redis.register_script(OWNER_SEEN)
        self._owner_written = redis.register_script(OWNER_WRITTEN)
        self._owner_dropped = redis.register_script(OWNER_DROPPED)

    def _name(self, owner: Key) -> str:
        return f"{self.prefix}ledger:{owner.encode()}"

    def _owner_name(self, owner: Key) -> str:
        return f"{self.prefix}owner:{owner.encode()}"

    # --- the owner itself -------------------------------------------------------------------
    def observe_owner(self, owner: Key, obj: JsonDict | None) -> None:
        """Record a watch event (or a listing) of the owner itself; None: it was deleted."""
        self.observe_owner_call(owner, obj)()

    def observe_owner_call(self, owner: Key, obj: JsonDict | None) -> ScriptCall:
        """``observe_owner`` as a call to send (with others: ``piggyback.send_together``)."""
        version = "" if obj is None else (owner_version(obj) or "-")
        text = "" if obj is None or version == "-" else _compact(owner_copy_of(obj))
        return ScriptCall(
            self._owner_seen, [self._owner_name(owner)], [version, text, TOMBSTONE_SECONDS]
        )

    def wrote_owner(self, owner: Key, obj: JsonDict) -> None:
        """Record the owner as a worker's own write left it (the API's answer).

        Inside a run with ``write_behind``, the call goes with the release of its lease.
        """
        version = owner_version(obj)
        if version is None:
            return
        call = ScriptCall(
            self._owner_written, [self._owner_name(owner)], [version, _compact(owner_copy_of(obj))]
        )
        self.write_behind.send(call)

    def owner_copy(self, owner: Key) -> OwnerCopy:
        """The owner as last seen (``OWNER_UNKNOWN``: read it from the API)."""
        version, text = cast(
            list[Any], self.redis.hmget(self._owner_name(owner), ["version", "object"])
        )
        return _owner_copy(version, text)

    def owner_and_records(
        self, owner: Key
    ) -> tuple[OwnerCopy, dict[str, ChildRecord], RenderPlan | None]:
        """``owner_copy`` and ``records_and_plan`` in one round trip (a reconcile's reads).

        Read ahead with the run's lease when it was (``preloaded``): then no round trip.
        """
        replies = self._take_preloaded(owner)
        if replies is None:
            with self.redis.pipeline(transaction=False) as pipe:
                self.add_reads(pipe, owner)
                replies = pipe.execute()
        (version, text), raw = replies
        return (_owner_copy(version, text), *_records_and_plan(raw))

    # --- read ahead with the lease (tango_operator.workqueue.piggyback) --------------------
    def add_reads(self, pipe: Pipeline, key: Key) -> None:
        """Queue the reads of ``owner_and_records`` for ``key`` on ``pipe``."""
        pipe.hmget(self._owner_name(key), ["version", "object"])
        pipe.hgetall(self._name(key))

    @contextmanager
    def preloaded(self, key: Key, replies: Sequence[Any] | None) -> Iterator[None]:
        """This thread's next ``owner_and_records(key)`` answers from ``replies`` (once)."""
        if replies is None:
            yield
            return
        self._local.preloaded = (key, replies)
        try:
            yield
        finally:
            self._local.preloaded = None

    def _take_preloaded(self, owner: Key) -> Sequence[Any] | None:
        found: tuple[Key, Sequence[Any]] | None = getattr(self._local, "preloaded", None)
        if found is None or found[0] != owner:
            return None
        self._local.preloaded = None  # once: a second read in the run reads Redis again
        return found[1]

    def drop_owner_copy(self, owner: Key) -> None:
        """Forget the owner's copy, unless it is a tombstone (a write showed it behind)."""
        self._owner_dropped(keys=[self._owner_name(owner)])

    # --- the children -----------------------------------------------------------------------
    def observe(self, owner: Key, child: str, state: ChildState | None) -> bool:
        """Record a watch event of ``child`` (None: deleted); True if the owner must look.

        One round trip (``OBSERVE``). The watcher is the only writer of what is seen (a worker
        only fills it in while it is absent, ``applied``), so a worker's ``intend`` racing with
        this makes it at worst one reconcile too many.
        """
        return observed_wanted(self.observe_call(owner, child, state)(), state)

    def observe_call(self, owner: Key, child: str, state: ChildState | None) -> ScriptCall:
        """``observe`` as a call to send; ``observed_wanted`` reads its reply."""
        return ScriptCall(
            self._observe,
            [self._name(owner)],
            [SEEN + child, INTENDED + child, APPLIED + child, _encoded(state)],
        )

    def records(self, owner: Key) -> dict[str, ChildRecord]:
        """Every child's record, by ``Kind/name``."""
        return self.records_and_plan(owner)[0]

    def records_and_plan(self, owner: Key) -> tuple[dict[str, ChildRecord], RenderPlan | None]:
        """Every child's record, by ``Kind/name``, and the last render's plan (one read)."""
        return _records_and_plan(cast(Mapping[Any, Any], self.redis.hgetall(self._name(owner))))

    def intend(
        self, owner: Key, digests: Mapping[str, str], plan: RenderPlan | None = None
    ) -> None:
        """Record the digests about to be applied (before the requests), and a new plan."""
        mapping = {INTENDED + c: d for c, d in digests.items()}
        if plan is not None:
            mapping[PLAN] = plan.encode()
        if mapping:
            self.redis.hset(self._name(owner), mapping=mapping)

    def applied(self, owner: Key, states: Mapping[str, ChildState]) -> None:
        """Record the answers to applies (by child): each version, and what was seen if nothing was.

        One round trip for all of them.
        """
        if not states:
            return
        name = self._name(owner)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={APPLIED + child: s.version for child, s in states.items()})
            for child, state in states.items():
                pipe.hsetnx(name, SEEN + child, state.encode())
            pipe.execute()

    def removed(self, owner: Key, children: Sequence[str]) -> None:
        """Drop the records of children a worker deleted (or found gone)."""
        fields = [prefix + child for child in children for prefix in (SEEN, INTENDED, APPLIED)]
        if fields:
            self.redis.hdel(self._name(owner), *fields)

    def forget(self, owner: Key) -> None:
        """Drop everything about ``owner`` and its children (the owner is gone)."""
        self.redis.delete(self._name(owner), self._owner_name(owner))


def _owner_copy(version: Any, text: Any) -> OwnerCopy:
    """The owner's copy from its hash's two fields (None when absent)."""
    if version is None:
        return OWNER_UNKNOWN
    if not version:
        return OWNER_DELETED
    obj = jsontext.loads(text)
    return OwnerCopy(known=True, obj=obj) if isinstance(obj, dict) else OWNER_UNKNOWN


def _records_and_plan(
    raw: Mapping[Any, Any],
) -> tuple[dict[str, ChildRecord], RenderPlan | None]:
    """The children's records and the render plan from the owner's ledger hash."""
    fields: dict[str, dict[str, str]] = {}
    plan = None
    for field, value in raw.items():
        name = decoded(field)
        if name == PLAN:
            plan = RenderPlan.decode(value)
            continue
        prefix, _, child = name.partition(":")
        fields.setdefault(child, {})[prefix + ":"] = decoded(value)
    records = {
        child: ChildRecord(
            seen=ChildState.decode(values[SEEN]) if SEEN in values else None,
            intended=values.get(INTENDED),
            applied_version=values.get(APPLIED),
        )
        for child, values in fields.items()
    }
    return records, plan


def observed_wanted(reply: Any, state: ChildState | None) -> bool:
    """Whether the owner must look, from ``OBSERVE``'s reply to recording ``state``."""
    raw_seen, raw_intended = cast(list[Any], reply)
    previous = ChildState.decode(raw_seen) if raw_seen else None
    intended = decoded(raw_intended) if raw_intended else None
    return needs_reconcile(previous, state, intended)


def _encoded(state: ChildState | None) -> str:
    return "" if state is None else state.encode()


def _compact(obj: JsonDict) -> str:
    return jsontext.dumps(obj)
