"""ferroq through Sentinel: a master, a replica and three sentinels on loopback
(``tests/topology.py``). Clients, servers and the scheduler follow the master Sentinel names;
the master is SIGKILLed mid-run, with and without durable mode.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from failover import redis_observer, run_through_failover
from ferroq import Client, Inspector, Scheduler, ServeMux, Server, Task, TaskState
from ferroq.errors import BrokerConnectionError, InvalidArgumentError
from topology import SentinelGroup, wait_until
from util import FAST


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI for the Sentinel tests")
        pytest.skip("redis-server not on PATH")
    g = SentinelGroup().start()
    yield g
    g.stop()


def master(g: SentinelGroup) -> redis.Redis:
    return redis.Redis(port=g.master_port(), socket_timeout=5)


def test_every_component_works_through_sentinel(group: SentinelGroup) -> None:
    url = group.url
    with master(group) as r:
        r.flushall()
    done: list[bytes] = []
    mux = ServeMux()
    mux.handle("t", lambda task: done.append(task.payload))
    fast: dict[str, Any] = dict(FAST)
    server = Server(url, queues={"s": 1}, concurrency=2, **fast)
    server.start(mux)
    scheduler = Scheduler(url, heartbeat_interval=0.5)
    scheduler.register("* * * * * *", Task("t", b"tick"), queue="s")
    scheduler.start()
    try:
        with Client(url) as c:
            info = c.enqueue(Task("t", b"x"), queue="s", retention=60)
        wait_until(lambda: b"x" in done and b"tick" in done, 10, "a task and a firing to run")
        with Inspector(url) as insp:
            wait_until(
                lambda: insp.get_task_info("s", info.id).state == TaskState.COMPLETED, 10, "done"
            )
            assert [s.id for s in insp.servers()] == [server.server_id]
            assert insp.scheduler_entries()
    finally:
        scheduler.shutdown()
        server.shutdown()
    with master(group) as r:
        assert r.exists("asynq:{s}:processed")


def test_an_unknown_service_or_dead_sentinels_are_reported(group: SentinelGroup) -> None:
    hosts = ",".join(f"127.0.0.1:{p}" for p in group.sentinel_ports)
    with (
        Client(f"redis+sentinel://{hosts}/nosuchservice") as c,
        pytest.raises(BrokerConnectionError),
    ):
        c.enqueue(Task("t", b""))
    with pytest.raises(InvalidArgumentError):
        Client(f"redis+sentinel://{hosts}")


@pytest.mark.parametrize("durable", [False, True], ids=["default", "durable"])
def test_a_master_killed_mid_run(group: SentinelGroup, durable: bool) -> None:
    with master(group) as r:
        r.flushall()

    def fail_over() -> float:
        old = group.kill_master()
        wait_until(lambda: group.master_port() != old, 30, "Sentinel to promote the replica")
        promoted = time.monotonic()
        # The old master comes back; Sentinel makes it a replica of the new one.
        node = group.master if group.master.port == old else group.replica
        node.start()
        try:
            wait_until(lambda: _replica_of(node.port, group.master_port()), 20, "Sentinel")
        except TimeoutError:
            # Sentinel converts a returning old master late at times: do what an operator would.
            with redis.Redis(port=node.port) as r:
                r.replicaof("127.0.0.1", group.master_port())
        wait_until(
            lambda: _replica_of(node.port, group.master_port()), 30, "the old master to follow"
        )
        return promoted

    report = run_through_failover(group.url, durable, fail_over, redis_observer(group.master_port))
    report.check(durable)


def _replica_of(port: int, master_port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1) as r:
        info = r.info("replication")
    return bool(
        info.get("role") == "slave"
        and int(info.get("master_port", 0)) == master_port
        and info.get("master_link_status") == "up"
    )
