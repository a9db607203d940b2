"""The Redis dependency index against a real redis-server."""

from __future__ import annotations

from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue.dependencies import RedisDependencyIndex


def _key(name: str) -> Key:
    return Key("DeviceServer", "lab", name)


def test_register_lookup_forget(redis_client: Redis) -> None:
    index = RedisDependencyIndex(redis_client)
    index.register(_key("b"), ("lab/a/1", "lab/a/2"))
    index.register(_key("c"), ("lab/a/2",))
    assert index.waiters_of(("lab/a/2",)) == [_key("b"), _key("c")]
    assert index.waiters_of(("lab/a/1", "lab/x/9")) == [_key("b")]
    index.register(_key("b"), ("lab/a/3",))  # now waits for something else only
    assert index.waiters_of(("lab/a/1",)) == []
    assert index.waiters_of(("lab/a/3",)) == [_key("b")]
    index.forget(_key("b"))
    index.forget(_key("nobody"))
    assert index.waiters_of(("lab/a/3",)) == []
    assert index.waiters_of(()) == []
