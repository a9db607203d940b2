"""Fair dispatch: keys wait in Redis per namespace and go to Celery a few at a time.

In front of ``WorkQueue``'s in-flight stage. Producers (the watcher's events, pump and
resync; the workers' dependency wake-ups) ``add`` keys; the watcher's dispatcher
(``watcher.dispatch``) calls ``dispatch`` whenever there may be room, which takes keys
round-robin across namespaces — each namespace's quantum per turn is its weight, 1 by
default — marks them in flight exactly as ``WorkQueue.enqueue`` would, and returns them
for the caller to send. The number of keys in flight (sent, not yet started: the length of
the Celery queue) is kept under a window, so a flood of one namespace waits here, where
the next namespace's key overtakes it, instead of in a FIFO Celery queue behind it.

Redis data, under the work queue's prefix (members are ``Key.encode()`` strings):

- ``pending``          HASH member → namespace: waiting to be dispatched (dedupe).
- ``pending:<ns>``     LIST of members, oldest first (a wake-up goes to the front).
- ``ring``             LIST of namespaces with pending keys, in turn order, and
  ``ring:members`` SET of the same (membership test).
- ``ring:credit``      HASH namespace → keys left of its turn, for a weighted namespace whose
  turn was cut short (by the window, or by a ``take`` of one key): it keeps the head of the
  ring until it has had its weight's worth.
- ``dispatch-signal``  LIST poked by ``add`` so that the dispatcher wakes at once.
- ``urgent``           SET of pending members to be sent at the urgent priority.

Urgency. A dependency wake-up goes to the front of its namespace's lane, but the keys
already sent — up to a window of them — are ahead of it in the Celery queue. A wake-up of
at most ``URGENT_WAKE_LIMIT`` keys is therefore also marked urgent: ``dispatch`` takes it out
of turn, even when the window is full (up to a reserve of one more window), says so, and the
dispatcher sends it at the urgent priority, which workers take before the normal messages
(``tango_operator.messages``). A larger wake-up (a DatabaseDS that came back, a provider
many servers wait for) is only put in front: urgent messages overtake every namespace's
keys, so they must stay few. Each urgent wake-up follows a server's export or start, which
took one of its namespace's fair turns, so a namespace cannot win more than a bounded share
this way.

Draining. While keys wait in the lanes, a worker that has finished its key may ``take`` the
next one itself, in the ring's turn order, instead of waiting for the dispatcher to send it
a message: ``take`` is ``dispatch`` for one key, outside the window (the key never waits in
Celery), and it takes nothing while an urgent message waits in Celery's urgent list, so
that the worker goes back to Celery and takes that first. The key is marked in flight
exactly as a dispatched one; the worker then takes its lease (``WorkQueue.begin``), as for a
message, and a worker that dies between the two leaves a mark without a message, which the
lost-message sweep (``tango_operator.workqueue.lost``) hands back.

The in-flight (``queued``), lease (``lock:``) and follow-up (``dirty:``) entries are
``WorkQueue``'s own: ``add`` answers DIRTY or DUPLICATE by the same rules as
``WorkQueue.enqueue``, and a dispatched key is one that ``enqueue`` would have said SEND
for. Everything is one Lua script per call.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, Protocol, cast

from tango_operator.keys import Key
from tango_operator.workqueue.epoch import guarded
from tango_operator.workqueue.queue import HOUSEKEEPING_SECONDS, WorkQueue
from tango_operator.workqueue.replies import decoded

URGENT_WAKE_LIMIT = 4
"""A wake-up of at most this many keys at once is sent urgently (see the module doc)."""


class Waker(Protocol):
    """A callable that wakes one key.

    ``urgent``: it is one of at most ``URGENT_WAKE_LIMIT`` woken at once. A true result: the key was
    not already queued.
    """

    def __call__(self, key: Key, *, urgent: bool = False) -> object:
        """Wake ``key``; ``urgent`` when it is one of a few woken at once."""


# KEYS: pending, lane, ring, ring_members, signal, queued, lock, dirty, urgent, epoch.
# ARGV: member, namespace, now, stale_after, dirty_ttl_ms, front ('1'/'0'), urgent ('1'/'0'),
# weak ('1'/'0': a key being processed is left alone instead of marked dirty), known epoch.
# Invariant kept by both scripts: a namespace is in the ring iff its lane is not empty,
# and a member is in its lane iff it is in `pending`.
ADD = guarded("""
if redis.call('EXISTS', KEYS[7]) == 1 then
  if ARGV[8] == '1' then
    return 'DUPLICATE'
  end
  redis.call('SET', KEYS[8], '1', 'PX', ARGV[5])
  return 'DIRTY'
end
local since = redis.call('ZSCORE', KEYS[6], ARGV[1])
if since and tonumber(ARGV[3]) - tonumber(since) < tonumber(ARGV[4]) then
  return 'DUPLICATE'
end
if ARGV[7] == '1' then
  redis.call('SADD', KEYS[9], ARGV[1])
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  if ARGV[6] == '1' then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    redis.call('LPUSH', KEYS[2], ARGV[1])
  end
  return 'DUPLICATE'
end
if ARGV[6] == '1' then
  redis.call('LPUSH', KEYS[2], ARGV[1])
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
if redis.call('SADD', KEYS[4], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 0)
return 'PENDING'
""")

# KEYS: pending, ring, ring_members, queued, processing, urgent, epoch.
# ARGV: now, stale_after, window, weights (JSON object), prefix, dirty_ttl_ms,
#       take (0: dispatch; n: take up to n keys in turn, outside the window; an urgent key
#       is taken only in its lane's turn, at whose front it waits),
#       the list that must be empty for a take ('' for none), known epoch.
# Urgent members go first, out of turn and beyond the window: while fewer than two windows
# of keys are in flight (they are few by construction; the second window is their reserve,
# so a burst of them still cannot flood Celery). Then each turn pops the ring's first
# namespace, takes up to its quantum of members from its lane and puts the namespace back
# at the end if its lane still has members. A member whose key is being processed is
# marked dirty instead (its follow-up runs it); one already in flight is dropped. Every
# turn shortens a lane, so the loop ends.
# -> {in flight before, processing, urgent count, member, member, ...} (urgent ones first)
DISPATCH = guarded("""
local now = tonumber(ARGV[1])
local stale = tonumber(ARGV[2])
local in_flight = redis.call('ZCOUNT', KEYS[4], now - stale, '+inf')
local out = {in_flight, redis.call('ZCARD', KEYS[5]), 0}
local room = tonumber(ARGV[3]) - in_flight
local taking = tonumber(ARGV[7]) > 0
if taking then
  if ARGV[8] ~= '' and redis.call('LLEN', ARGV[8]) > 0 then
    return out
  end
  room = tonumber(ARGV[7])
end
local weights = cjson.decode(ARGV[4])
local credit = ARGV[5] .. 'ring:credit'
local function take(member)
  if redis.call('EXISTS', ARGV[5] .. 'lock:' .. member) == 1 then
    redis.call('SET', ARGV[5] .. 'dirty:' .. member, '1', 'PX', ARGV[6])
    return false
  end
  local since = redis.call('ZSCORE', KEYS[4], member)
  if since and now - tonumber(since) < stale then
    return false
  end
  redis.call('ZADD', KEYS[4], now, member)
  return true
end
-- urgent keys first, out of turn, with a reserve of one more window beyond the window
local urgent_room = 2 * tonumber(ARGV[3]) - in_flight
if taking then urgent_room = 0 end
if urgent_room > 0 then
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[6])) do
    if urgent_room <= 0 then break end
    redis.call('SREM', KEYS[6], member)
    local namespace = redis.call('HGET', KEYS[1], member)
    if namespace then
      redis.call('HDEL', KEYS[1], member)
      local lane = ARGV[5] .. 'pending:' .. namespace
      redis.call('LREM', lane, 1, member)
      if redis.call('LLEN', lane) == 0 then
        redis.call('LREM', KEYS[2], 0, namespace)
        redis.call('SREM', KEYS[3], namespace)
        redis.call('HDEL', credit, namespace)
      end
      if take(member) then
        out[#out + 1] = member
        out[3] = out[3] + 1
        urgent_room = urgent_room - 1
        room = room - 1
      end
    end
  end
end
while room > 0 do
  local namespace = redis.call('LPOP', KEYS[2])
  if not namespace then break end
  local lane = ARGV[5] .. 'pending:' .. namespace
  local quantum = tonumber(redis.call('HGET', credit, namespace) or weights[namespace] or 1)
  while quantum > 0 and room > 0 do
    local member = redis.call('LPOP', lane)
    if not member then break end
    redis.call('HDEL', KEYS[1], member)
    if take(member) then
      out[#out + 1] = member
      room = room - 1
      quantum = quantum - 1
    end
  end
  if redis.call('LLEN', lane) == 0 then
    redis.call('SREM', KEYS[3], namespace)
    redis.call('HDEL', credit, namespace)
  elseif quantum > 0 then
    -- cut short by the room: the rest of its turn comes first at the next call
    redis.call('LPUSH', KEYS[2], namespace)
    redis.call('HSET', credit, namespace, quantum)
  else
    redis.call('RPUSH', KEYS[2], namespace)
    redis.call('HDEL', credit, namespace)
  end
end
return out
""")


class AddResult(enum.Enum):
    """What ``FairQueue.add`` did with a key."""

    PENDING = "pending"
    """Waiting for its turn; the dispatcher sends it."""
    DUPLICATE = "duplicate"
    """Already pending or in flight."""
    DIRTY = "dirty"
    """Being processed: marked for one follow-up run."""


class FairQueue:
    """``add`` and ``dispatch`` over one ``WorkQueue``'s Redis (see the module doc)."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        prefix = queue.prefix
        self.prefix = prefix
        self._pending = prefix + "pending"
        self._ring = prefix + "ring"
        self._ring_members = prefix + "ring:members"
        self.signal = prefix + "dispatch-signal"
        self._urgent = prefix + "urgent"
        self._add = queue.redis.register_script(ADD)
        self._dispatch = queue.redis.register_script(DISPATCH)

    def add(
        self, key: Key, *, front: bool = False, urgent: bool = False, weak: bool = False
    ) -> AddResult:
        """Make ``key`` wait for dispatch.

        ``front``: ahead of its namespace's other keys (a dependency wake-up, which should not wait
        behind a flood of its own namespace); ``urgent``: also sent at the urgent priority (a
        wake-up of a few keys); ``weak``: a key being processed is left alone (a resync). Urgency is
        kept until the key is dispatched; a key already in flight keeps its message.
        """
        member = key.encode()
        reply = self.queue.epoch.call(
            self._add,
            keys=[
                self._pending,
                f"{self.prefix}pending:{key.namespace}",
                self._ring,
                self._ring_members,
                self.signal,
                self.queue._queued,
                self.queue._lock(member),
                self.queue._dirty(member),
                self._urgent,
            ],
            args=[
                member,
                key.namespace,
                self.queue.clock(),
                self.queue.stale_after,
                round(HOUSEKEEPING_SECONDS * 1000),
                "1" if front else "0",
                "1" if urgent else "0",
                "1" if weak else "0",
            ],
        )
        return AddResult[decoded(reply)]

    def dispatch(self, window: int, weights: Mapping[str, int] | None = None) -> Dispatched:
        """Mark up to ``window`` minus the keys in flight as in flight, fairly.

        The caller sends one message for each key returned. The script looks at the epoch first: a
        Redis that lost its data is noticed before any message is sent
        (``tango_operator.workqueue.epoch``).
        """
        return self._dispatch_call(window, weights, take=0, unless_waiting="")

    def take(self, *, unless_waiting: str, weights: Mapping[str, int] | None = None) -> Key | None:
        """The next pending key in turn, marked in flight for the caller to run (see "Draining").

        None when no key is pending, or while the list ``unless_waiting`` (Celery's urgent
        list) holds a message. An urgent key is not taken out of turn (the dispatcher sends it
        so); one still pending when its lane's turn comes is taken then. The caller takes the
        key's lease next (``WorkQueue.begin``), as it would for a message.
        """
        taken = self._dispatch_call(0, weights, take=1, unless_waiting=unless_waiting)
        return taken.keys[0] if taken.keys else None

    def _dispatch_call(
        self, window: int, weights: Mapping[str, int] | None, *, take: int, unless_waiting: str
    ) -> Dispatched:
        reply = self.queue.epoch.call(
            self._dispatch,
            keys=[
                self._pending,
                self._ring,
                self._ring_members,
                self.queue._queued,
                self.queue._processing,
                self._urgent,
            ],
            args=[
                self.queue.clock(),
                self.queue.stale_after,
                max(0, window),
                json.dumps(dict(weights or {})) if weights else "{}",
                self.prefix,
                round(HOUSEKEEPING_SECONDS * 1000),
                take,
                unless_waiting,
            ],
        )
        in_flight, processing, urgent_count, *members = reply
        keys: list[Key] = []
        urgent: set[Key] = set()
        for position, member in enumerate(members):
            try:
                key = Key.decode(decoded(member))
            except ValueError:
                continue
            keys.append(key)
            if position < int(urgent_count):
                urgent.add(key)
        return Dispatched(
            keys=keys, in_flight=int(in_flight), processing=int(processing), urgent=urgent
        )

    def pending(self) -> int:
        """Count the keys waiting for dispatch, over all namespaces."""
        return cast(int, self.queue.redis.hlen(self._pending))

    def pending_by_namespace(self) -> dict[str, int]:
        """Count the keys waiting for dispatch per namespace; namespaces with none are left out."""
        members = cast(set[Any], self.queue.redis.smembers(self._ring_members))
        namespaces = [decoded(n) for n in members]
        with self.queue.redis.pipeline(transaction=False) as pipe:
            for namespace in namespaces:
                pipe.llen(f"{self.prefix}pending:{namespace}")
            counts = pipe.execute()
        return {n: int(c) for n, c in zip(namespaces, counts, strict=True) if int(c)}


class Dispatched:
    """What one ``dispatch`` did: the keys to send, and the load it saw before."""

    __slots__ = ("in_flight", "keys", "processing", "urgent")

    def __init__(
        self,
        keys: list[Key],
        in_flight: int,
        processing: int,
        urgent: set[Key] | frozenset[Key] = frozenset(),
    ) -> None:
        self.keys = keys
        self.urgent = frozenset(urgent)
        """Those of ``keys`` to send at the urgent priority."""
        self.in_flight = in_flight
        """Keys in flight (sent, not started) before this call."""
        self.processing = processing
        """Keys being reconciled (leases held or not yet swept)."""
