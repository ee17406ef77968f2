"""Go and ferroq servers on the same queues: work is shared, dead servers' tasks are recovered
once by whoever survives, and ferroq's lease renewal keeps Go's recoverer off its tasks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

import wire
from asynqgo import GoAsynq, GoServer
from ferroq import Client, ServeMux, Server, Task
from util import wait_until

ROOT = Path(__file__).resolve().parents[2]
StartGo = Callable[..., GoServer]
MakeServer = Callable[..., Server]


def state(r: redis.Redis, task_id: str) -> str | None:
    v = r.hget(f"asynq:{{default}}:t:{task_id}", "state")
    return v.decode() if isinstance(v, bytes) else None


def expire_lease(r: redis.Redis, task_id: str) -> None:
    """As if the lease had run out two minutes ago (instead of waiting for it)."""
    r.zadd("asynq:{default}:lease", {task_id: int(time.time()) - 120})


def test_mixed_fleet_processes_each_task_once(
    client: Client, r: redis.Redis, go_server: StartGo, make_server: MakeServer
) -> None:
    n = 400
    ids = {
        i.id for i in client.enqueue_many([Task("ok:shared", str(i).encode()) for i in range(n)])
    }
    ferroq_seen: list[str] = []
    lock = threading.Lock()

    def record(task: Task) -> None:
        with lock:
            assert task.id is not None
            ferroq_seen.append(task.id)

    go = go_server(concurrency="4")
    make_server(concurrency=4).start(record)
    wait_until(lambda: r.get("asynq:{default}:processed") == str(n).encode(), timeout=60)
    go_seen = [e["id"] for e in go.handled]
    assert sorted(go_seen + ferroq_seen) == sorted(ids), "every task exactly once"
    assert go_seen and ferroq_seen, "both servers took work"


def test_go_recovers_a_task_of_a_killed_ferroq_worker(
    client: Client, r: redis.Redis, redis_url: str, go_server: StartGo
) -> None:
    info = client.enqueue(Task("crash"), max_retry=3)
    worker = subprocess.run(
        [sys.executable, "-m", "ferroq", "worker", "tests.apps:mux", "--redis", redis_url,
         "--task-check-interval", "0.05"],
        cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 3
    assert state(r, info.id) == "active"
    expire_lease(r, info.id)
    go_server("other=1")  # its recoverer runs at start, for every queue it serves
    go_server("default=1")
    wait_until(lambda: state(r, info.id) == "retry", timeout=20)
    raw = r.hget(f"asynq:{{default}}:t:{info.id}", "msg")
    assert isinstance(raw, bytes)
    m = wire.task(raw)
    assert (m["retried"], m["error_msg"]) == (1, "asynq: task lease expired")


def test_ferroq_recovers_a_task_of_a_killed_go_server(
    go: GoAsynq, r: redis.Redis, go_server: StartGo, make_server: MakeServer
) -> None:
    info = go.enqueue("block:x", None, max_retry=2)
    server = go_server()
    wait_until(lambda: server.handled)
    server.kill()
    assert state(r, info["id"]) == "active"
    expire_lease(r, info["id"])
    make_server().start(ServeMux())  # an empty mux: the task will only be recovered, not run
    wait_until(lambda: state(r, info["id"]) == "retry")
    ti = go.inspect("task", "default", info["id"])
    assert (ti["retried"], ti["last_err"]) == (1, "asynq: task lease expired")


def test_ferroq_lease_renewal_keeps_gos_recoverer_off(
    client: Client, r: redis.Redis, go_server: StartGo, make_server: MakeServer
) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def long_task(task: Task) -> None:
        assert task.id is not None
        runs.append(task.id)
        started.set()
        release.wait(30)

    info = client.enqueue(Task("long"), max_retry=3)
    make_server(heartbeat_interval=0.2).start(long_task)
    assert started.wait(10)
    expire_lease(r, info.id)  # a stale lease, as a Go recoverer could find it...
    wait_until(lambda: (r.zscore("asynq:{default}:lease", info.id) or 0) > time.time() + 20)
    # A task of a really dead server, so we can tell when Go's recoverer has made its pass.
    orphan = wire.encode_task(type="long", id="orphan", queue="default", retry=3, timeout=60)
    r.hset("asynq:{default}:t:orphan", mapping={"msg": orphan, "state": "active"})
    r.lpush("asynq:{default}:active", "orphan")
    expire_lease(r, "orphan")
    go = go_server("default=1", concurrency="1")  # ...but ferroq renewed it before Go looked
    wait_until(lambda: state(r, "orphan") in ("retry", "pending"), timeout=20)
    assert state(r, info.id) == "active"
    release.set()
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert runs == [info.id]
    assert info.id not in {e["id"] for e in go.handled}
