"""A workload that runs every Lua script the core has, for the tests that check a rule of all of
them: ``test_cluster.py`` (each call keeps to one slot of a real cluster) and ``test_lua_keys.py``
(each names the keys it touches in KEYS).

Every kind of enqueue (plain, unique, retained, scheduled, grouped, batched) over twelve queues,
a server whose handlers succeed, fail, skip retries and revoke, the scheduler, the Inspector's
writes (payload update, bulk archive/run/delete, an archive trimmed to its size, aggregating
tasks, a forced queue delete over a stray hash), a due task forwarded back into its group, and a
task still running at shutdown, which is requeued.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import redis

from ferroq import Client, Inspector, RevokeTask, Scheduler, ServeMux, Server, SkipRetry, Task
from topology import wait_until
from util import FAST

LUA = Path(__file__).resolve().parent.parent / "rust" / "rdb" / "lua"
QUEUES = [f"c{i}" for i in range(12)]


def exercise_every_script(
    url: str, raw: redis.Redis | redis.RedisCluster, *, declare_keys: bool = False
) -> None:
    """Runs the workload on ``url`` to its end (every component shut down).

    Args:
        url: where ferroq connects (any URL form).
        raw: a plain client of the same Redis, for the writes no ferroq call makes.
        declare_keys: the server's declared-keys mode.
    """
    client = Client(url)
    inspector = Inspector(url)
    for i, q in enumerate(QUEUES):
        client.enqueue(Task("ok", b"%d" % i), queue=q)
        client.enqueue(Task("ok", b"u%d" % i), queue=q, unique=60)
        client.enqueue(Task("ok", b"kept%d" % i), queue=q, retention=1)
        client.enqueue(Task("ok", b"later%d" % i), queue=q, process_in=0.5)
        client.enqueue(Task("ok", b"ulater%d" % i), queue=q, process_in=0.5, unique=60)
        client.enqueue(Task("ok", b"g%d" % i), queue=q, group="g")
        client.enqueue(Task("ok", b"ug%d" % i), queue=q, group="g", unique=60)
        client.enqueue(Task("fail", b"f%d" % i), queue=q, max_retry=1)
        client.enqueue(Task("skip", b"s%d" % i), queue=q)
        client.enqueue(Task("revoke", b"r%d" % i), queue=q, retention=60)
        client.enqueue_many([Task("ok", b"b%d.%d" % (i, j)) for j in range(5)], queue=q)
    # Inspector writes: a payload update, archive/run/delete in bulk.
    info = client.enqueue(Task("ok", b"old"), queue="idle", process_in=3600)
    inspector.update_task_payload("idle", info.id, b"new")
    assert inspector.archive_all_scheduled_tasks("idle") == 1
    assert inspector.run_all_archived_tasks("idle") == 1
    client.enqueue(Task("ok", b"gone"), queue="idle", process_in=3600)
    assert inspector.delete_all_scheduled_tasks("idle") == 1
    # An archive over its size: trimmed to it.
    with Inspector(url, archive_max_size=1) as small:
        for _ in range(2):
            client.enqueue(Task("ok", b"t"), queue="idle", process_in=3600)
        assert small.archive_all_scheduled_tasks("idle") == 2
    assert len(inspector.list_archived_tasks("idle")) == 1
    client.enqueue(Task("ok", b"x"), queue="doomed")
    client.enqueue(Task("ok", b"ux"), queue="doomed", unique=60, process_in=3600)
    # A due task whose hash names a group (as a grouped task's retry does): forwarded into it.
    regrouped = client.enqueue(Task("ok", b"regrouped"), queue="c4", process_in=0.5)
    raw.hset(f"asynq:{{c4}}:t:{regrouped.id}", "group", "g")
    # A task hash no container holds: delete_queue's SCAN finds it (where the queue's slot is).
    raw.hset("asynq:{doomed}:t:stray", "state", "pending")

    done: list[bytes] = []
    lock = threading.Lock()

    def ok(task: Task) -> None:
        with lock:
            done.append(task.payload)
        task.write_result(b"r")

    def fail(task: Task) -> None:
        raise RuntimeError("fails on purpose")

    def skip(task: Task) -> None:
        raise SkipRetry("archived on purpose")

    def revoke(task: Task) -> None:
        raise RevokeTask("dropped on purpose")

    mux = ServeMux()
    for name, h in (("ok", ok), ("fail", fail), ("skip", skip), ("revoke", revoke)):
        mux.handle(name, h)
    settings: dict[str, Any] = {**FAST, "shutdown_timeout": 0.5}
    server = Server(
        url,
        queues=dict.fromkeys(QUEUES, 1),
        concurrency=4,
        retry_delay=lambda n, e, t: 0.2,
        declare_keys=declare_keys,
        **settings,
    )
    server.start(mux)
    scheduler = Scheduler(url, heartbeat_interval=0.5)
    scheduler.register("* * * * * *", Task("ok", b"tick"), queue="c3")
    scheduler.start()
    try:
        # Plain, unique, retained, scheduled (x2), batched.
        want = len(QUEUES) * (5 + 5)
        wait_until(lambda: len(done) >= want, 30, f"{want} tasks done")
        wait_until(lambda: len(inspector.list_archived_tasks("c5")) == 2, 30, "retries archived")
        assert inspector.servers() and inspector.scheduler_entries()
        wait_until(lambda: raw.zscore("asynq:{c4}:g:g", regrouped.id) is not None, 10, "regrouped")
        assert inspector.run_all_archived_tasks("c5") == 2
        assert inspector.delete_all_archived_tasks("c6") == 2
        assert inspector.archive_all_pending_tasks("c7") >= 0
        assert inspector.run_all_aggregating_tasks("c8", "g") == 2
        assert inspector.delete_all_aggregating_tasks("c9", "g") == 2
        assert inspector.archive_all_aggregating_tasks("c10", "g") == 2
        inspector.delete_queue("doomed", force=True)
        assert not raw.exists("asynq:{doomed}:t:stray")
        # A task still running at shutdown is requeued.
        started = threading.Event()

        def slow(task: Task) -> None:
            started.set()
            time.sleep(3)

        mux.handle("slow", slow)
        client.enqueue(Task("slow", b""), queue="c11")
        wait_until(started.is_set, 10, "the slow task to start")
        stats = {i.queue: i for i in inspector.get_queue_infos()}
        assert set(QUEUES) <= set(stats)
        time.sleep(1.5)  # a janitor pass over the retained tasks, a lease renewal
    finally:
        scheduler.shutdown()
        server.shutdown()
    assert inspector.get_queue_info("c11").pending == 1
    client.close()
    inspector.close()
