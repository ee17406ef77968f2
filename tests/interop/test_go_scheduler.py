"""ferroq's Scheduler next to Go's: Go's Inspector (what `asynq cron ls` prints) lists ferroq's
entries and their history, and a Go and a ferroq scheduler can feed one queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from asynqgo import GoAsynq
from ferroq import Scheduler, Server, Task
from util import wait_until


@pytest.fixture
def scheduler(redis_url: str) -> Iterator[Scheduler]:
    s = Scheduler(redis_url, heartbeat_interval=1)
    yield s
    s.shutdown()


def test_go_lists_ferroq_entries_and_their_history(
    go: GoAsynq, r: redis.Redis, scheduler: Scheduler
) -> None:
    eid = scheduler.register(
        "* * * * * *", Task("tick", b"\x07"), queue="q", max_retry=3, timeout=90
    )
    scheduler.start()
    wait_until(lambda: r.llen("asynq:{q}:pending") >= 2)
    entries = wait_until(lambda: [e for e in go.inspect("cron") if e["prev"] > 0] or None)
    (e,) = entries
    assert (e["id"], e["spec"], e["type"], e["payload_hex"]) == (eid, "* * * * * *", "tick", "07")
    assert set(e["opts"]) >= {'Queue("q")', "MaxRetry(3)", "Timeout(1m30s)"}
    assert e["next"] >= int(time.time())
    assert e["prev"] <= int(time.time())
    history = go.inspect("history", eid)
    assert len(history) >= 2
    pending = {i.decode() for i in cast(list[bytes], r.lrange("asynq:{q}:pending", 0, -1))}
    assert {h["task_id"] for h in history} <= pending
    assert all(abs(h["enqueued_at"] - time.time()) < 30 for h in history)


def test_go_and_ferroq_schedulers_feed_one_queue(
    go: GoAsynq, redis_url: str, scheduler: Scheduler
) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def record(task: Task) -> None:
        with lock:
            seen.append(task.type)

    scheduler.register("* * * * * *", Task("ok:fq-periodic"), queue="mix")
    scheduler.start()
    go_sched = go.schedule("@every 1s", "ok:go-periodic", queue="mix")
    srv = Server(redis_url, queues={"mix": 1}, task_check_interval=0.05)
    try:
        srv.start(record)
        wait_until(lambda: {"ok:fq-periodic", "ok:go-periodic"} <= set(seen), timeout=20)
        # Go's scheduler publishes its entries one heartbeat after it starts.
        both = {"ok:fq-periodic", "ok:go-periodic"}

        def both_listed() -> list[dict[str, Any]] | None:
            entries: list[dict[str, Any]] = go.inspect("cron")
            return entries if {e["type"] for e in entries} == both else None

        listed = wait_until(both_listed)
        assert go_sched.started["entry_id"] in {e["id"] for e in listed}
    finally:
        srv.shutdown()
        go_sched.stop()


def test_go_reads_an_entrys_queue_outside_the_bmp(
    go: GoAsynq, r: redis.Redis, scheduler: Scheduler
) -> None:
    """The options are written as Go's %q writes them: Go's Inspector parses the queue back
    (a JSON-style surrogate pair, "\\ud83d\\ude80", it rejected and dropped the option)."""
    queue = "s9-\u00fc\U0001f680"
    scheduler.register("@every 1h", Task("tick"), queue=queue)
    scheduler.start()
    (e,) = wait_until(lambda: go.inspect("cron") or None)
    assert f'Queue("{queue}")' in e["opts"]
