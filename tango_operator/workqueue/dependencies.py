"""The dependency index in Redis: which DeviceServers wait for which TANGO devices.

Written by the DeviceServer reconciler when a server has to wait (``register``) and when it
stops waiting (``forget``, a script sent with the release of the run's lease); read when a
server reaches Running (``waiters_of``) so the servers waiting for its devices are enqueued
at once instead of at their next poll. One SET per device (``dep:<device>`` → waiting keys)
and one per waiter (``waits:<key>`` → devices), updated together (a transaction, a script).
"""

from __future__ import annotations

from typing import Any, cast

from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue.piggyback import ScriptCall, WriteBehind
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded

# KEYS: the waiter's set.  ARGV: the prefix of the devices' sets, the waiter's member.
# Takes the waiter out of the set of every device it waits for, then drops its own set.
_FORGET = """
local devices = redis.call('SMEMBERS', KEYS[1])
for _, device in ipairs(devices) do
  redis.call('SREM', ARGV[1] .. device, ARGV[2])
end
redis.call('DEL', KEYS[1])
return #devices
"""


class RedisDependencyIndex:
    """The dependency index on one Redis, under ``prefix``."""

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
        """Where a run's ``forget`` waits for its lease's release (``piggyback``)."""
        self._forget = redis.register_script(_FORGET)

    def _device(self, device: str) -> str:
        return f"{self.prefix}dep:{device}"

    def _waiter(self, waiter: Key) -> str:
        return f"{self.prefix}waits:{waiter.encode()}"

    def _members(self, name: str) -> set[Any]:
        # redis-py types its commands for both the sync and the asyncio client
        return cast(set[Any], self.redis.smembers(name))

    def register(self, waiter: Key, devices: tuple[str, ...]) -> None:
        """Record that ``waiter`` waits for ``devices``, replacing what it waited for before."""
        member = waiter.encode()
        previous = {decoded(d) for d in self._members(self._waiter(waiter))}
        with self.redis.pipeline() as pipe:
            for device in previous - set(devices):
                pipe.srem(self._device(device), member)
            pipe.delete(self._waiter(waiter))
            for device in devices:
                pipe.sadd(self._device(device), member)
                pipe.sadd(self._waiter(waiter), device)
            pipe.execute()

    def waiters_of(self, devices: tuple[str, ...]) -> list[Key]:
        """Return the keys waiting for any of ``devices``, sorted."""
        if not devices:
            return []
        members = cast(set[Any], self.redis.sunion([self._device(d) for d in devices]))
        return sorted(Key.decode(decoded(m)) for m in members)

    def forget(self, waiter: Key) -> None:
        """Drop every wait of ``waiter`` (it no longer waits for anything).

        One script; inside a run with ``write_behind``, it goes with the release of the run's
        lease. Until then a provider that starts may still wake ``waiter``: one run more.
        """
        call = ScriptCall(self._forget, [self._waiter(waiter)], [self._device(""), waiter.encode()])
        self.write_behind.send(call)
