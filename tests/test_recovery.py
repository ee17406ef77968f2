"""Crashes, restarts and shutdowns: nothing is lost when a worker dies or Redis goes away."""

from __future__ import annotations

import signal
import threading
import time
from typing import cast

import pytest
import redis

from ferroq import (
    Client,
    Server,
    Task,
)
from ferroq._embedded import EmbeddedRedis
from server_helpers import (
    Holder,
    MakeServer,
    counter,
    empty_active,
    msg,
    mux_of,
    started,
    state,
    worker,
)
from util import wait_until


def test_crashed_worker_task_is_recovered_by_another_server(
    client: Client, r: redis.Redis, redis_url: str, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("crash"), max_retry=2)
    p = worker(redis_url)
    assert p.wait(30) == 3, "the handler's os._exit ends the worker"
    assert state(r, info.id) == "active"
    assert r.zscore("asynq:{default}:lease", info.id) is not None
    # Pretend the lease ran out long ago instead of waiting a minute for it.
    r.zadd("asynq:{default}:lease", {info.id: int(time.time()) - 120})
    make_server().start(mux_of({"other": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "retry")
    m = msg(r, info.id)
    assert (m["retried"], m["error_msg"]) == (1, "asynq: task lease expired")
    assert empty_active(r)


def test_recovered_task_without_retries_left_is_archived(
    client: Client, r: redis.Redis, redis_url: str, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("crash"), max_retry=0)
    assert worker(redis_url).wait(30) == 3
    r.zadd("asynq:{default}:lease", {info.id: int(time.time()) - 120})
    make_server().start(mux_of({"other": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "archived")


def test_shutdown_requeues_what_still_runs(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    started = threading.Event()

    def stubborn(task: Task) -> None:
        started.set()
        time.sleep(3)

    info = client.enqueue(Task("t"), max_retry=4)
    srv = make_server(shutdown_timeout=0.3, concurrency=1)
    srv.start(mux_of({"t": stubborn}))
    assert started.wait(10)
    waiting = client.enqueue(Task("t"))  # behind the running one
    srv.shutdown()
    assert state(r, info.id) == "pending"
    # The requeued task goes back to the head of the line: dequeue pops from the right.
    pending = [
        bytes(i).decode() for i in cast(list[bytes], r.lrange("asynq:{default}:pending", 0, -1))
    ]
    assert pending == [waiting.id, info.id]
    assert msg(r, info.id)["retried"] == 0
    assert empty_active(r)
    assert r.zcard("asynq:servers") == 0


def test_sigterm_lets_running_tasks_finish(client: Client, r: redis.Redis, redis_url: str) -> None:
    info = client.enqueue(Task("block"), timeout=2)
    p = worker(redis_url, "--shutdown-timeout", "10")
    # The handler's own report: a task is active (leased) before its handler starts, and a
    # shutdown requeues a leased task whose handler has not started.
    wait_until(lambda: r.hget(f"asynq:{{default}}:t:{info.id}", "progress") == b'"started"')
    p.terminate()
    assert p.wait(30) == 0
    # The handler returned at its deadline, so the task failed normally instead of being requeued.
    assert state(r, info.id) == "retry"
    assert r.zcard("asynq:servers") == 0


def test_a_second_ctrl_c_requeues_running_tasks_at_once(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    """Celery's second Ctrl-C: the shutdown stops waiting for handlers (here for up to 60 s)."""
    info = client.enqueue(Task("block"))
    p = worker(redis_url, "--shutdown-timeout", "60")
    try:
        wait_until(lambda: started(r, info.id))
        p.send_signal(signal.SIGINT)
        time.sleep(1.0)  # past the window in which a SIGINT is the same stop delivered twice
        assert p.poll() is None and state(r, info.id) == "active"
        p.send_signal(signal.SIGINT)
        assert p.wait(15) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert state(r, info.id) == "pending", "requeued at once, not failed or run to the end"
    assert r.zcard("asynq:servers") == 0


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "quick-sigint"])
def test_a_repeated_stop_is_still_graceful(
    client: Client, r: redis.Redis, redis_url: str, second: signal.Signals
) -> None:
    """A SIGTERM sent twice (a process group's and its forwarder's), or a SIGINT right after
    the first signal (a terminal's and a reloader's), does not cut the running tasks short."""
    info = client.enqueue(Task("nap"), retention=60)
    p = worker(redis_url, "--shutdown-timeout", "20")
    try:
        wait_until(lambda: started(r, info.id))
        p.send_signal(signal.SIGTERM if second == signal.SIGTERM else signal.SIGINT)
        time.sleep(0.6 if second == signal.SIGTERM else 0.05)
        p.send_signal(second)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert state(r, info.id) == "completed", "the handler ran to its end"


def test_a_killed_connection_is_replaced_transparently(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """Connections killed while idle (a Redis restart, a proxy timeout) cost nothing."""
    done = threading.Event()

    def first(task: Task) -> None:
        pass

    def drop_connections(task: Task) -> None:
        me = r.client_id()
        for c in r.client_list():
            if int(c["id"]) != me:
                r.client_kill_filter(_id=c["id"])
        done.set()

    client.enqueue(Task("first"))
    make_server().start(mux_of({"first": first, "kill": drop_connections}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    info = client.enqueue(Task("kill"))
    assert done.wait(10)
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert counter(r, "asynq:{default}:processed") == 2
    assert empty_active(r)


def test_outcome_is_written_once_redis_is_back(caplog: pytest.LogCaptureFixture) -> None:
    """While Redis is down the syncer keeps the outcome and writes it when Redis returns."""
    store = EmbeddedRedis(args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    hold = Holder()
    started, release = hold.started, hold.release

    try:
        with Client(store.url) as c:
            info = c.enqueue(Task("t"), unique=3600)  # the syncer's write releases the lock
        srv = Server(
            store.url, syncer_interval=0.5, task_check_interval=0.05, heartbeat_interval=0.5
        )
        srv.start(mux_of({"t": hold}))
        try:
            assert started.wait(10)
            store.terminate()
            release.set()
            wait_until(lambda: "retrying in the background" in caplog.text, timeout=20)
            store.start()
            obs = redis.Redis.from_url(store.url)
            wait_until(lambda: not obs.exists(f"asynq:{{default}}:t:{info.id}"), timeout=20)
            assert counter(obs, "asynq:{default}:processed") == 1
            assert empty_active(obs)
            assert not obs.keys("asynq:{default}:unique:*"), "the unique lock is released"
            obs.close()
        finally:
            srv.shutdown()
    finally:
        store.stop()


def test_unreachable_redis_fails_start() -> None:
    from ferroq import BrokerConnectionError

    srv = Server("redis://127.0.0.1:1")
    with pytest.raises(BrokerConnectionError):
        srv.start(lambda t: None)


def test_server_cannot_start_twice(make_server: MakeServer) -> None:
    from ferroq import ServerClosedError

    srv = make_server()
    srv.start(lambda t: None)
    with pytest.raises(ServerClosedError):
        srv.start(lambda t: None)
    srv.shutdown()
    assert srv.status == "closed"
