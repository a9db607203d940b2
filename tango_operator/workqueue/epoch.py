"""Leases across a Redis that lost its data: the epoch and the grace period.

The work queue's leases (``tango_operator.workqueue.queue``) live only in Redis. A Redis that
restarts without persistence, or is flushed, forgets them while their holders are still
reconciling; granting the same key again at once runs it in two workers at the same time
(the fault soak, ``tests/soak``, caught exactly that). Lock servers that lose their state
have one remedy — NFS's grace period, Redlock's "delayed restart": grant nothing until every
lease that may still be running has been taken back by its holder or has run out.

So Redis keeps an *epoch* (HASH ``<prefix>epoch``): a random ``id`` made by the first call on
an empty Redis, when it was made (``since``, the caller's clock) and the longest ``lease``
granted under it (recorded by ``begin``). Every ``WorkQueue`` remembers the epoch it last
saw and the longest lease it knows of. One that finds the epoch gone, or replaced, knows that
Redis lost its data: it starts the new epoch (if gone) and a *grace period* (STRING
``<prefix>grace`` with a TTL) that ends that longest lease after the new epoch began. While it
lasts ``begin`` grants nothing: the key is answered Busy, marked for a follow-up and handed
back by ``due`` when the grace ends. Holders take their lock back at their next renewal (every
third of a lease), since a missing lock that nobody else holds is theirs again.

A fresh process remembers nothing, so it cannot tell an empty Redis from a flushed one and
starts an epoch without a grace: the first start of an installation waits for nothing, and a
process that never saw a lease granted knows of none to wait for. The loss is noticed by the
first call of a process that saw the old epoch — the leading watcher's pump (every 0.5 s at
most), its dispatcher, any enqueue, begin or renewal — so before any message sent after the
loss can reach a worker, unless the sender, too, started after the loss.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis

from tango_operator.workqueue.replies import decoded

log = logging.getLogger(__name__)

_GUARD_ATTEMPTS = 3
"""A guarded call that finds a new epoch this many times running gives up (raises)."""

# KEYS: epoch, grace.  ARGV: known id ('' = none), fresh id, now, longest known lease (s).
# -> {epoch id, longest lease granted in it (s), grace left (ms, 0 = none)}
EPOCH = """
local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  id = ARGV[2]
  redis.call('HSET', KEYS[1], 'id', id, 'since', ARGV[3], 'lease', '0')
end
if ARGV[1] ~= '' and id ~= ARGV[1] then
  local since = tonumber(redis.call('HGET', KEYS[1], 'since'))
  local left = math.floor((since + tonumber(ARGV[4]) - tonumber(ARGV[3])) * 1000)
  if left >= 1 and left > redis.call('PTTL', KEYS[2]) then
    redis.call('SET', KEYS[2], id, 'PX', left)
  end
end
local grace = redis.call('PTTL', KEYS[2])
if grace < 0 then grace = 0 end
return {id, redis.call('HGET', KEYS[1], 'lease'), grace}
"""


GUARD = """
if redis.call('HGET', KEYS[#KEYS], 'id') ~= ARGV[#ARGV] then
  return 'EPOCH'
end
"""
"""Prepended to the queue's scripts (``guarded``): their last KEY is the epoch, their last ARGV
the epoch id the caller knows. A script that finds another epoch (or none) does nothing and
answers ``EPOCH``; the caller then looks at the epoch (``Epoch.check``) and calls again. So
the look costs no round trip of its own while the epoch stays the same."""


def guarded(script: str) -> str:
    """``script`` behind the epoch guard."""
    return GUARD + script


class Epoch:
    """One process's view of the epoch (owned by its ``WorkQueue``)."""

    def __init__(self, redis: Redis, prefix: str, clock: Callable[[], float]) -> None:
        self.key = prefix + "epoch"
        self.grace_key = prefix + "grace"
        self.clock = clock
        self.known = ""
        """The epoch id last seen ('' before the first call)."""
        self.longest_lease = 0.0
        """The longest lease known to have been granted, in seconds."""
        self._script = redis.register_script(EPOCH)

    def call(
        self,
        script: Callable[..., Any],
        keys: list[str],
        args: list[Any],
        own_lease: float = 0.0,
    ) -> Any:
        """Run a ``guarded`` script registered on this Redis, with the epoch appended.

        Looks at the epoch first when this process knows none yet, and again (then calls
        once more) whenever the script finds another one.
        """
        if not self.known:
            self.check(own_lease)
        for _ in range(_GUARD_ATTEMPTS):
            reply = script(keys=[*keys, self.key], args=[*args, self.known])
            if not (isinstance(reply, bytes | str) and decoded(reply) == "EPOCH"):
                return reply
            self.check(own_lease)
        raise RuntimeError("the work queue's epoch keeps changing; is Redis being flushed?")

    def check(self, own_lease: float = 0.0) -> float:
        """Look at the epoch (starting it, and the grace if it was lost).

        ``own_lease``: the lease this process grants itself, once it has. Returns the seconds of
        grace left.
        """
        remembered = max(self.longest_lease, own_lease)
        found, lease, grace_ms = self._script(
            keys=[self.key, self.grace_key],
            args=[self.known, uuid.uuid4().hex, self.clock(), remembered],
        )
        epoch = decoded(found)
        grace = int(grace_ms) / 1000
        if self.known and epoch != self.known:
            log.warning(
                "the work queue's Redis lost its data (restarted empty or flushed); "
                "no lease is granted for %.1fs, until every lease of before may have ended",
                grace,
            )
        self.known = epoch
        self.longest_lease = max(remembered, float(decoded(lease)))
        return grace
