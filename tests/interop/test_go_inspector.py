"""Go's Inspector (what asynq's CLI and asynqmon use) on a ferroq deployment: it reads ferroq's
servers, workers, queues and tasks, and its operations act on ferroq's tasks."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import cast

import pytest
import redis

import wire
from asynqgo import GoAsynq
from ferroq import Client, ServeMux, Server, SkipRetry, Task
from util import wait_until

MakeServer = Callable[..., Server]


def test_go_lists_ferroqs_server_and_its_workers(
    client: Client, go: GoAsynq, make_server: MakeServer
) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(task: Task) -> None:
        started.set()
        release.wait(20)

    info = client.enqueue(Task("hold", b"\x07"), queue="critical", timeout=90)
    before = time.time()
    srv = make_server(concurrency=9, queues={"critical": 6, "default": 3}, strict_priority=True)
    srv.start(hold)
    assert started.wait(10)
    wait_until(lambda: go.inspect("servers") and go.inspect("servers")[0]["active_workers"])
    (s,) = go.inspect("servers")
    assert s["id"] == srv.server_id
    assert (s["host"], s["pid"]) == (socket.gethostname(), os.getpid())
    assert (s["concurrency"], s["queues"], s["strict_priority"]) == (
        9, {"critical": 6, "default": 3}, True,
    )  # fmt: skip
    assert s["status"] == "active"
    assert before - 2 <= s["started"] <= time.time()
    (w,) = s["active_workers"]
    assert (w["task_id"], w["task_type"], w["payload_hex"], w["queue"]) == (
        info.id, "hold", "07", "critical",
    )  # fmt: skip
    assert w["deadline"] == pytest.approx(time.time() + 90, abs=5)
    (active,) = go.inspect("list", "critical", "active")
    assert (active["id"], active["state"], active["is_orphaned"]) == (info.id, "active", False)
    release.set()
    srv.shutdown()
    assert go.inspect("servers") == []


def test_go_reads_ferroq_tasks_in_every_state(
    client: Client, go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    mux = ServeMux()
    mux.handle("ok", lambda t: None)

    def keep(task: Task) -> None:
        task.write_result(b"kept")

    mux.handle("keep", keep)

    def fail(task: Task) -> None:
        raise ValueError("try later")

    def skip(task: Task) -> None:
        raise SkipRetry("never")

    mux.handle("fail", fail)
    mux.handle("skip", skip)
    pending = client.enqueue(Task("ok", b"p"), queue="idle")
    at = datetime.now(timezone.utc) + timedelta(hours=2)
    scheduled = client.enqueue(Task("ok", b"s"), process_at=at, max_retry=7)
    retry = client.enqueue(Task("fail", b"r"), max_retry=3)
    archived = client.enqueue(Task("skip", b"a"))
    completed = client.enqueue(Task("keep", b"c"), retention=timedelta(hours=1))
    make_server(retry_delay=lambda n, e, t: 3600).start(mux)
    wait_until(lambda: r.zcard("asynq:{default}:completed") == 1)
    wait_until(
        lambda: r.zcard("asynq:{default}:retry") == 1 and r.zcard("asynq:{default}:archived") == 1
    )

    assert go.inspect("queues") == ["default", "idle"]
    qi = go.inspect("queue", "default")
    assert (qi["scheduled"], qi["retry"], qi["archived"], qi["completed"]) == (1, 1, 1, 1)
    assert (qi["processed_total"], qi["failed_total"], qi["processed"], qi["failed"]) == (
        3,
        2,
        3,
        2,
    )
    assert qi["paused"] is False
    assert go.inspect("queue", "idle")["pending"] == 1

    (p,) = go.inspect("list", "idle", "pending")
    assert (p["id"], p["state"], p["payload_hex"], p["max_retry"], p["timeout"]) == (
        pending.id, "pending", b"p".hex(), 25, 1800,
    )  # fmt: skip
    (s,) = go.inspect("list", "default", "scheduled")
    assert (s["id"], s["next_process_at"], s["max_retry"]) == (
        scheduled.id,
        math.ceil(at.timestamp()),
        7,
    )
    (rt,) = go.inspect("list", "default", "retry")
    assert (rt["id"], rt["retried"], rt["last_err"]) == (retry.id, 1, "ValueError: try later")
    assert rt["next_process_at"] == pytest.approx(time.time() + 3600, abs=10)
    assert rt["last_failed_at"] == pytest.approx(time.time(), abs=10)
    (a,) = go.inspect("list", "default", "archived")
    assert (a["id"], a["last_err"], a["retried"]) == (archived.id, "never", 0)
    (c,) = go.inspect("list", "default", "completed")
    assert (c["id"], c["result_hex"], c["retention"]) == (completed.id, b"kept".hex(), 3600)
    assert c["completed_at"] == pytest.approx(time.time(), abs=10)
    # Zero times read as zero (Go's IsZero), not 1970.
    assert (p["last_failed_at"], p["completed_at"], p["deadline"]) == (0, 0, 0)


def test_go_operations_act_on_ferroq_tasks(
    client: Client, go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    ran: list[str] = []
    mux = ServeMux()
    mux.handle("t", lambda t: ran.append(t.payload.decode()))
    later = client.enqueue(Task("t", b"run-me"), process_in=3600)
    doomed = client.enqueue(Task("t", b"archive-me"), process_in=3600)
    gone = client.enqueue(Task("t", b"delete-me"), process_in=3600, unique=3600)
    go.inspect("run", "default", later.id)
    go.inspect("archive", "default", doomed.id)
    go.inspect("delete", "default", gone.id)
    assert r.keys("asynq:{default}:unique:*") == [], "DeleteTask releases ferroq's lock"
    go.inspect("pause", "default")
    client.enqueue(Task("t", b"canary"), queue="canary")
    srv = make_server(queues={"default": 1, "canary": 1})
    srv.start(mux)
    assert go.inspect("queue", "default")["paused"] is True
    wait_until(lambda: ran == ["canary"])  # the server is fetching...
    assert r.llen("asynq:{default}:pending") == 1, "...but not from the paused queue"
    go.inspect("unpause", "default")
    wait_until(lambda: ran == ["canary", "run-me"])
    ti = go.inspect("task", "default", doomed.id)
    assert ti["state"] == "archived"
    assert not r.exists(f"asynq:{{default}}:t:{gone.id}")


def test_go_cancel_stops_a_running_ferroq_handler(
    client: Client, go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    started = threading.Event()

    async def long(task: Task) -> None:
        started.set()
        await asyncio.sleep(60)

    info = client.enqueue(Task("long"), max_retry=2)
    make_server(retry_delay=lambda n, e, t: 3600).start(long)
    assert started.wait(10)
    go.inspect("cancel", info.id)
    ti = wait_until(lambda: (t := go.inspect("task", "default", info.id))["state"] == "retry" and t)
    assert ti["last_err"] == "context canceled"


def test_unknown_protobuf_fields_are_tolerated_and_dropped_like_go(
    r: redis.Redis, go: GoAsynq, make_server: MakeServer
) -> None:
    """A message from a newer writer (an extra field 20): ferroq runs it; when ferroq rewrites it
    (retry), the unknown field is dropped, as Go servers do (wire spec §10)."""
    msg = wire.encode_task(type="t", id="future", queue="default", retry=3, timeout=60)
    msg += bytes([0xA2, 0x01, 3]) + b"new"  # field 20, wire type 2: key varint 0xA2 0x01
    assert 20 in wire.task(msg)["_unknown"]
    r.sadd("asynq:queues", "default")
    r.hset("asynq:{default}:t:future", mapping={"msg": msg, "state": "pending", "pending_since": 1})
    r.lpush("asynq:{default}:pending", "future")

    def fail(task: Task) -> None:
        raise RuntimeError("again")

    make_server(retry_delay=lambda n, e, t: 3600).start(fail)
    wait_until(lambda: r.hget("asynq:{default}:t:future", "state") == b"retry")
    rewritten = wire.task(cast(bytes, r.hget("asynq:{default}:t:future", "msg")))
    assert "_unknown" not in rewritten
    assert go.inspect("task", "default", "future")["retried"] == 1
