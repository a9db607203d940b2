"""The starting DeviceServers in Redis: whose devices to look for in TANGO, and where.

Written by the task layer with the release of each reconcile's lease (``workers.execution``,
``piggyback``): a server whose pod is starting is registered with its TANGO host and devices
(one script, ``register_call``), any other outcome forgets it (``WorkQueue.finish``'s
``forget_in``).
Read by the export watcher (``workers.export_watcher``), which looks for those devices in the
TANGO DB every tenth of a second and wakes the server and its waiters the moment they are
exported — much cheaper than polling with full reconciles. One HASH (member → JSON), and a
turn-taking lease so that only one worker process looks at a time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue.piggyback import ScriptCall
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded

# Renew the turn only if it is still ours (compare-and-set).
_TAKE_TURN = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


# KEYS: the registry.  ARGV: member, TANGO host, devices (a JSON array), now.
# Registers the member unless it is with the same host and devices; keeps its first `since`.
_REGISTER = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local since = ARGV[4]
if raw then
  local ok, previous = pcall(cjson.decode, raw)
  if ok and type(previous) == 'table' then
    local wanted = cjson.decode(ARGV[3])
    local had = previous.devices
    local same = previous.host == ARGV[2] and type(had) == 'table' and #had == #wanted
    if same then
      for i = 1, #wanted do
        if had[i] ~= wanted[i] then same = false end
      end
    end
    if same then return 0 end
    -- its text as written, not Lua's number (14 digits)
    local first = string.match(raw, '"since":%s*([-+%d.eE]+)')
    if first then since = first end
  end
end
redis.call('HSET', KEYS[1], ARGV[1],
  '{"host":' .. cjson.encode(ARGV[2]) .. ',"devices":' .. ARGV[3] .. ',"since":' .. since .. '}')
return 1
"""


@dataclass(frozen=True)
class Starting:
    """One starting server: its key, TANGO host and the devices its pod will export."""

    key: Key
    tango_host: str
    devices: tuple[str, ...]
    since: float
    """Unix time the server was first registered as starting."""


class StartingServers:
    """The starting servers on one Redis, under ``prefix``, and the export watcher's turn."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.name = prefix + "starting"
        """The registry's hash (``WorkQueue.finish(forget_in=...)`` drops a field of it)."""
        self._turn = prefix + "export-watcher"
        self._take_turn = redis.register_script(_TAKE_TURN)
        self._register = redis.register_script(_REGISTER)

    def register(self, key: Key, tango_host: str, devices: tuple[str, ...]) -> None:
        """Register ``key`` as starting, with the devices to look for on ``tango_host``.

        A server registered again keeps its first ``since``; an unchanged entry is not rewritten.
        """
        self.register_call(key, tango_host, devices)()

    def register_call(self, key: Key, tango_host: str, devices: tuple[str, ...]) -> ScriptCall:
        """``register`` as a script call, to be sent with the release of a lease (``piggyback``)."""
        return ScriptCall(
            self._register,
            [self.name],
            [key.encode(), tango_host, json.dumps(list(devices)), repr(time.time())],
        )

    def forget(self, key: Key) -> None:
        """Stop looking for the devices of ``key``."""
        self.redis.hdel(self.name, key.encode())

    def entries(self) -> list[Starting]:
        """Return the starting servers, by key; entries that do not parse are deleted."""
        found: list[Starting] = []
        raw = cast(dict[Any, Any], self.redis.hgetall(self.name))
        for member, value in raw.items():
            try:
                key = Key.decode(decoded(member))
                entry = json.loads(decoded(value))
                found.append(
                    Starting(
                        key=key,
                        tango_host=str(entry["host"]),
                        devices=tuple(str(d) for d in entry["devices"]),
                        since=float(entry["since"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                self.redis.hdel(self.name, member)  # not ours to read: drop it
        return sorted(found, key=lambda s: s.key)

    def take_turn(self, holder: str, seconds: float) -> bool:
        """Hold (or keep) the watcher's turn for ``seconds``; False while another has it."""
        return bool(self._take_turn(keys=[self._turn], args=[holder, max(1, int(seconds * 1000))]))
