"""Fixtures of the work-queue tests: one real redis-server per session, a clean DB per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from devstack.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()
