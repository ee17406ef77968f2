"""ferroq's Inspector on a Go asynq deployment: it reads the tasks the real Go client enqueued
and the real Go server processed, and its operations act on them as Go's servers see it.

Go's own Inspector (through asynqctl) is the independent observer: what ferroq reads of a task
must be what Go reads of it, field by field.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from asynqgo import GoAsynq, GoError, GoServer
from ferroq import (
    Inspector,
    InvalidArgumentError,
    QueueNotEmptyError,
    QueueNotFoundError,
    TaskInfo,
    TaskNotFoundError,
    TaskState,
)
from util import wait_until

StartGo = Callable[..., GoServer]


@pytest.fixture
def insp(redis_url: str) -> Iterator[Inspector]:
    with Inspector(redis_url) as i:
        yield i


def _secs(t: datetime | None) -> int:
    return 0 if t is None else int(t.timestamp())


def as_go(t: TaskInfo) -> dict[str, Any]:
    """A ferroq ``TaskInfo`` in the form asynqctl prints Go's ``TaskInfo`` (Go's zero values for
    what ferroq reads as ``None``)."""
    return {
        "id": t.id,
        "queue": t.queue,
        "type": t.type,
        "payload_hex": t.payload.hex(),
        "headers": t.headers,
        "state": t.state.value,
        "max_retry": t.max_retry,
        "retried": t.retried,
        "last_err": t.last_error or "",
        "last_failed_at": _secs(t.last_failed_at),
        "timeout": int(t.timeout.total_seconds()) if t.timeout is not None else 0,
        "deadline": _secs(t.deadline),
        "group": t.group or "",
        "next_process_at": _secs(t.next_process_at),
        "is_orphaned": t.is_orphaned,
        "retention": int(t.retention.total_seconds()),
        "completed_at": _secs(t.completed_at),
        "result_hex": (t.result or b"").hex(),
    }


def assert_reads_as_go(go: GoAsynq, t: TaskInfo) -> None:
    """ferroq's view of the task is Go's ``GetTaskInfo`` of it."""
    mine, theirs = as_go(t), go.inspect("task", t.queue, t.id)
    if t.state in (TaskState.PENDING, TaskState.ACTIVE):  # "now" for a pending task, in both
        assert mine.pop("next_process_at") == pytest.approx(theirs.pop("next_process_at"), abs=2)
    assert mine == theirs


def state_of(insp: Inspector, queue: str, task_id: str) -> TaskState:
    return insp.get_task_info(queue, task_id).state


def in_state(
    insp: Inspector, queue: str, task_id: str, state: TaskState, retried: int | None = None
) -> TaskInfo | None:
    """The task once it is in ``state`` (with ``retried`` retries), else ``None``."""
    t = insp.get_task_info(queue, task_id)
    if t.state != state or (retried is not None and t.retried != retried):
        return None
    return t


def handled(srv: GoServer, task_id: str) -> list[dict[str, Any]]:
    return [h for h in srv.handled if h["id"] == task_id]


# ---- reads: tasks waiting in every state ---------------------------------------------------


def test_ferroq_reads_go_enqueued_tasks(go: GoAsynq, insp: Inspector) -> None:
    deadline = int(time.time()) + 7200
    pending = go.enqueue(
        "ok:pending", b"\x00p\xff", max_retry=4, timeout="45s", header={"trace": "t-1"}
    )
    scheduled = go.enqueue("ok:scheduled", b"s", process_in="1h", max_retry=7, deadline=deadline)
    grouped = go.enqueue("ok:grouped", b"g", group="batch")
    unique = go.enqueue("ok:unique", b"u", unique="1h")
    custom = go.enqueue("ok:custom", b"c", queue="side", task_id="go-fixed-id", retention="2h")
    assert (scheduled["state"], grouped["state"], custom["id"]) == (
        "scheduled", "aggregating", "go-fixed-id",
    )  # fmt: skip

    assert insp.queues() == ["default", "side"]
    qi = insp.get_queue_info("default")
    assert (qi.queue, qi.pending, qi.active, qi.scheduled, qi.retry, qi.archived) == (
        "default", 2, 0, 1, 0, 0,
    )  # fmt: skip
    assert (qi.completed, qi.aggregating, qi.groups, qi.size) == (0, 1, 1, 4)
    assert (qi.processed, qi.failed, qi.processed_total, qi.failed_total) == (0, 0, 0, 0)
    assert qi.paused is False
    assert qi.memory_usage is not None and qi.memory_usage > 0
    # Go writes pending_since in Unix nanoseconds: the oldest task waited well under a minute.
    assert timedelta(0) < qi.latency < timedelta(seconds=20)
    gq = go.inspect("queue", "default")
    assert qi.latency.total_seconds() * 1000 == pytest.approx(gq["latency_ms"], abs=2000)
    assert {k: gq[k] for k in ("size", "groups", "pending", "scheduled", "aggregating")} == {
        "size": qi.size, "groups": qi.groups, "pending": qi.pending,
        "scheduled": qi.scheduled, "aggregating": qi.aggregating,
    }  # fmt: skip
    side = insp.get_queue_info("side")
    assert (side.pending, side.size, side.groups) == (1, 1, 0)
    # ferroq estimates memory as Go's Inspector does, with and without groups (up to five
    # groups: beyond, each samples the first five it reads, in its own order).
    assert side.memory_usage == go.inspect("queue", "side")["memory_usage"]
    assert qi.memory_usage == gq["memory_usage"]
    assert side.memory_usage is not None and side.memory_usage > 0
    assert insp.get_queue_info("side", memory=False).memory_usage is None
    assert [q.queue for q in insp.get_queue_infos()] == ["default", "side"]

    # Pending tasks oldest first, as Go lists them.
    p = insp.list_pending_tasks("default")
    assert [(t.id, t.type, t.payload) for t in p] == [
        (pending["id"], "ok:pending", b"\x00p\xff"),
        (unique["id"], "ok:unique", b"u"),
    ]
    assert [t["id"] for t in go.inspect("list", "default", "pending")] == [t.id for t in p]
    (s,) = insp.list_scheduled_tasks("default")
    assert (s.id, s.type, s.payload, s.state) == (
        scheduled["id"], "ok:scheduled", b"s", TaskState.SCHEDULED,
    )  # fmt: skip
    (g,) = insp.list_aggregating_tasks("default", "batch")
    assert (g.id, g.type, g.payload, g.group, g.state) == (
        grouped["id"], "ok:grouped", b"g", "batch", TaskState.AGGREGATING,
    )  # fmt: skip
    assert [(x.group, x.size) for x in insp.groups("default")] == [("batch", 1)]
    (c,) = insp.list_pending_tasks("side")
    assert (c.id, c.queue, c.retention) == ("go-fixed-id", "side", timedelta(hours=2))
    for state in ("active", "retry", "archived", "completed"):
        assert insp.list_tasks("default", state) == []

    # One task at a time, every field.
    tp = insp.get_task_info("default", pending["id"])
    assert (tp.max_retry, tp.timeout, tp.deadline, tp.headers) == (
        4, timedelta(seconds=45), None, {"trace": "t-1"},
    )  # fmt: skip
    assert (tp.retried, tp.last_error, tp.last_failed_at, tp.result, tp.group) == (
        0, None, None, None, None,
    )  # fmt: skip
    ts = insp.get_task_info("default", scheduled["id"])
    assert (ts.max_retry, ts.timeout) == (7, None)  # Go: a deadline and no timeout
    assert ts.deadline == datetime.fromtimestamp(deadline, timezone.utc)
    assert ts.next_process_at is not None
    assert _secs(ts.next_process_at) == scheduled["next_process_at"]
    assert ts.next_process_at.timestamp() == pytest.approx(time.time() + 3600, abs=10)
    tu = insp.get_task_info("default", unique["id"])
    assert (tu.max_retry, tu.timeout) == (25, timedelta(minutes=30))  # Go's defaults
    tg = insp.get_task_info("default", grouped["id"])
    assert (tg.group, tg.state, tg.next_process_at) == ("batch", TaskState.AGGREGATING, None)
    tc = insp.get_task_info("side", "go-fixed-id")
    assert (tc.retention, tc.completed_at) == (timedelta(hours=2), None)
    for t in (tp, ts, tu, tg, tc):
        assert_reads_as_go(go, t)
    for t in (s, g):  # listings read the same tasks as get_task_info
        assert t == insp.get_task_info(t.queue, t.id)
    for t in (*p, s, g, c):
        assert_reads_as_go(go, t)

    with pytest.raises(TaskNotFoundError):
        insp.get_task_info("default", "go-fixed-id")


# ---- reads: what a Go server did --------------------------------------------------------


def test_ferroq_reads_what_the_go_server_did(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    done = go.enqueue("ok:done", b"d")
    kept = go.enqueue("result:kept", b"the answer", retention="1h")
    failed = go.enqueue("fail:once", b"f", max_retry=0)
    skipped = go.enqueue("skip:it", b"k", max_retry=5)
    retry = go.enqueue("fail:again", b"r", max_retry=3)
    before = time.time()
    srv = go_server(retry_delay="1h")

    def settled() -> bool:
        qi = insp.get_queue_info("default")
        return (qi.completed, qi.archived, qi.retry, qi.pending, qi.active) == (1, 2, 1, 0, 0)

    wait_until(settled, timeout=15)
    assert sorted(h["id"] for h in srv.handled) == sorted(
        t["id"] for t in (done, kept, failed, skipped, retry)
    )
    after = time.time()

    (c,) = insp.list_completed_tasks("default")
    assert (c.id, c.type, c.state, c.result, c.retention) == (
        kept["id"], "result:kept", TaskState.COMPLETED, b"the answer", timedelta(hours=1),
    )  # fmt: skip
    assert c.completed_at is not None
    assert before - 1 <= c.completed_at.timestamp() <= after + 1
    archived = {t.id: t for t in insp.list_archived_tasks("default")}
    assert set(archived) == {failed["id"], skipped["id"]}
    a_fail, a_skip = archived[failed["id"]], archived[skipped["id"]]
    assert (a_fail.last_error, a_fail.retried, a_fail.max_retry) == ("go handler failed", 0, 0)
    assert (a_skip.last_error, a_skip.retried, a_skip.max_retry) == (
        "go gives up: skip retry for the task", 0, 5,
    )  # fmt: skip
    for a in (a_fail, a_skip):
        assert a.state == TaskState.ARCHIVED and a.next_process_at is None
        assert a.last_failed_at is not None
        assert before - 1 <= a.last_failed_at.timestamp() <= after + 1
    (rt,) = insp.list_retry_tasks("default")
    assert (rt.id, rt.retried, rt.last_error) == (retry["id"], 1, "go handler failed")
    assert rt.next_process_at is not None
    assert rt.next_process_at.timestamp() == pytest.approx(time.time() + 3600, abs=10)
    with pytest.raises(TaskNotFoundError):  # no retention: Go deleted it
        insp.get_task_info("default", done["id"])
    for t in (c, a_fail, a_skip, rt):
        assert_reads_as_go(go, t)
        assert t == insp.get_task_info("default", t.id)

    # Counters: 5 tasks processed, 3 of them failed (2 archived, 1 to retry), as Go counts.
    qi = insp.get_queue_info("default")
    assert (qi.processed, qi.failed, qi.processed_total, qi.failed_total) == (5, 3, 5, 3)
    assert (qi.size, qi.latency) == (4, timedelta(0))
    gq = go.inspect("queue", "default")
    assert (gq["processed"], gq["failed"], gq["processed_total"], gq["failed_total"]) == (
        5,
        3,
        5,
        3,
    )
    (today,) = insp.history("default", 1)
    assert (today.queue, today.processed, today.failed) == ("default", 5, 3)
    assert today.date == datetime.now(timezone.utc).date()
    week = insp.history("default", 7)
    assert [d.date for d in week] == [today.date - timedelta(days=n) for n in range(7)]
    assert [(d.processed, d.failed) for d in week[1:]] == [(0, 0)] * 6


# ---- writes: ferroq's operations on Go's tasks, as the Go server sees them -------------------


def test_ferroq_runs_go_archived_tasks_again(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    ids = [go.enqueue("skip:again", bytes([i]))["id"] for i in range(3)]
    srv = go_server(concurrency="1")
    wait_until(lambda: insp.get_queue_info("default").archived == 3, timeout=15)
    assert [len(handled(srv, i)) for i in ids] == [1, 1, 1]

    insp.run_task("default", ids[0])
    wait_until(lambda: len(handled(srv, ids[0])) == 2)
    again = handled(srv, ids[0])[1]
    assert (again["type"], again["payload_hex"], again["retry_count"]) == ("skip:again", "00", 0)
    wait_until(lambda: state_of(insp, "default", ids[0]) == TaskState.ARCHIVED)
    assert [len(handled(srv, i)) for i in ids] == [2, 1, 1]

    assert insp.run_all_archived_tasks("default") == 3
    wait_until(lambda: [len(handled(srv, i)) for i in ids] == [3, 2, 2])
    wait_until(lambda: insp.get_queue_info("default").archived == 3)
    qi = insp.get_queue_info("default")
    assert (qi.processed_total, qi.failed_total) == (7, 7)
    with pytest.raises(InvalidArgumentError):
        insp.archive_task("default", ids[1])  # already archived
    with pytest.raises(QueueNotFoundError):
        insp.run_all_archived_tasks("nowhere")


def test_ferroq_delete_releases_go_unique_locks(go: GoAsynq, insp: Inspector) -> None:
    pending = go.enqueue("ok:unique", b"same", unique="1h")
    scheduled = go.enqueue("ok:unique", b"later", unique="1h", process_in="1h")
    for payload, extra in ((b"same", {}), (b"later", {"process_in": "1h"})):
        with pytest.raises(GoError, match="task already exists"):
            go.enqueue("ok:unique", payload, unique="1h", **extra)

    insp.delete_task("default", pending["id"])
    insp.delete_task("default", scheduled["id"])
    for t in (pending, scheduled):
        with pytest.raises(TaskNotFoundError):
            insp.get_task_info("default", t["id"])
        with pytest.raises(GoError):
            go.inspect("task", "default", t["id"])
    # Go can enqueue the same unique tasks again: the locks went with the tasks.
    again = go.enqueue("ok:unique", b"same", unique="1h")
    later = go.enqueue("ok:unique", b"later", unique="1h", process_in="1h")
    assert again["id"] not in (pending["id"], scheduled["id"])
    assert [t.id for t in insp.list_pending_tasks("default")] == [again["id"]]
    assert [t.id for t in insp.list_scheduled_tasks("default")] == [later["id"]]
    with pytest.raises(GoError, match="task already exists"):
        go.enqueue("ok:unique", b"same", unique="1h")
    # All at once, too.
    assert insp.delete_all_pending_tasks("default") == 1
    assert insp.delete_all_scheduled_tasks("default") == 1
    go.enqueue("ok:unique", b"same", unique="1h")
    go.enqueue("ok:unique", b"later", unique="1h", process_in="1h")


def test_ferroq_bulk_operations_on_go_tasks(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    ids = {go.enqueue("ok:bulk", f"b{i}".encode(), process_in="1h")["id"] for i in range(3)}
    grouped = go.enqueue("ok:grouped", b"g", group="batch")
    shelved = go.enqueue("ok:grouped", b"shelved", group="batch")
    alone = go.enqueue("ok:grouped", b"alone", group="solo")
    assert [(x.group, x.size) for x in insp.groups("default")] == [("batch", 2), ("solo", 1)]
    insp.archive_task("default", shelved["id"])  # out of its group, which stays
    insp.delete_task("default", alone["id"])  # the last of its group: the group goes
    assert [(x.group, x.size) for x in insp.groups("default")] == [("batch", 1)]
    assert go.inspect("queue", "default")["groups"] == 1
    assert [t["id"] for t in go.inspect("list", "default", "aggregating", "batch")] == [
        grouped["id"]
    ]
    assert go.inspect("task", "default", shelved["id"])["state"] == "archived"
    assert insp.delete_all_archived_tasks("default") == 1
    assert insp.archive_all_scheduled_tasks("default") == 3
    assert insp.archive_all_scheduled_tasks("default") == 0
    assert {t.id for t in insp.list_archived_tasks("default")} == ids
    assert {t["id"] for t in go.inspect("list", "default", "archived")} == ids
    assert all(go.inspect("task", "default", i)["state"] == "archived" for i in ids)
    qi = insp.get_queue_info("default")
    assert (qi.scheduled, qi.archived, qi.aggregating) == (0, 3, 1)

    assert insp.run_all_archived_tasks("default") == 3
    assert insp.run_all_aggregating_tasks("default", "batch") == 1
    assert insp.groups("default") == []
    assert go.inspect("queue", "default")["groups"] == 0
    qi = insp.get_queue_info("default")
    assert (qi.pending, qi.archived, qi.aggregating, qi.groups) == (4, 0, 0, 0)
    srv = go_server()
    wait_until(lambda: len(srv.handled) == 4)
    assert {h["id"] for h in srv.handled} == ids | {grouped["id"]}
    assert sorted(bytes.fromhex(h["payload_hex"]) for h in srv.handled) == [
        b"b0", b"b1", b"b2", b"g",
    ]  # fmt: skip
    wait_until(lambda: insp.get_queue_info("default").processed == 4)
    assert insp.get_queue_info("default").size == 0


def test_ferroq_updates_a_go_scheduled_payload(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    info = go.enqueue("ok:update", b"old", process_in="1h", max_retry=3, timeout="90s")
    before = go.inspect("task", "default", info["id"])
    updated = insp.update_task_payload("default", info["id"], b"\x00new\xff")
    assert (updated.id, updated.payload, updated.state) == (
        info["id"], b"\x00new\xff", TaskState.SCHEDULED,
    )  # fmt: skip
    # Go reads the new payload, and nothing else of the task changed.
    after = go.inspect("task", "default", info["id"])
    assert after == {**before, "payload_hex": b"\x00new\xff".hex()}
    assert_reads_as_go(go, updated)
    pending = go.enqueue("ok:update", b"p")
    with pytest.raises(InvalidArgumentError):  # only a scheduled task's payload can change
        insp.update_task_payload("default", pending["id"], b"x")
    assert insp.get_task_info("default", pending["id"]).payload == b"p"
    insp.delete_task("default", pending["id"])

    insp.run_task("default", info["id"])
    assert state_of(insp, "default", info["id"]) == TaskState.PENDING
    with pytest.raises(InvalidArgumentError):
        insp.run_task("default", info["id"])  # already pending
    srv = go_server()
    (h,) = wait_until(lambda: handled(srv, info["id"]))
    assert (h["payload_hex"], h["max_retry"], h["type"]) == (b"\x00new\xff".hex(), 3, "ok:update")
    assert h["deadline"] == pytest.approx(time.time() + 90, abs=10)


def test_ferroq_pauses_a_queue_the_go_server_serves(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    held = go.enqueue("ok:held", b"h", queue="held")
    insp.pause_queue("held")
    with pytest.raises(InvalidArgumentError):
        insp.pause_queue("held")
    assert insp.get_queue_info("held").paused is True
    assert go.inspect("queue", "held")["paused"] is True
    srv = go_server("held=1,canary=1")
    canary = go.enqueue("ok:canary", b"c", queue="canary")
    wait_until(lambda: handled(srv, canary["id"]))  # the Go server is fetching...
    time.sleep(0.5)  # ...five check intervals of it...
    assert handled(srv, held["id"]) == []  # ...but not from the paused queue
    qi = insp.get_queue_info("held")
    assert (qi.pending, qi.active, qi.processed, qi.paused) == (1, 0, 0, True)
    assert [t.id for t in insp.list_pending_tasks("held")] == [held["id"]]

    insp.unpause_queue("held")
    assert go.inspect("queue", "held")["paused"] is False
    (h,) = wait_until(lambda: handled(srv, held["id"]))
    assert (h["queue"], h["payload_hex"]) == ("held", "68")
    wait_until(lambda: insp.get_queue_info("held").processed == 1)
    with pytest.raises(InvalidArgumentError):
        insp.unpause_queue("held")


def test_ferroq_pages_go_tasks_in_gos_order(go: GoAsynq, insp: Inspector) -> None:
    pending = [go.enqueue("ok:p", bytes([i]))["id"] for i in range(7)]
    scheduled = [go.enqueue("ok:s", bytes([i]), process_in=f"{10 - i}h")["id"] for i in range(7)]
    go_pending = [t["id"] for t in go.inspect("list", "default", "pending")]
    go_scheduled = [t["id"] for t in go.inspect("list", "default", "scheduled")]
    assert (go_pending, go_scheduled) == (pending, scheduled[::-1])  # oldest, soonest first
    for page in (1, 2, 3, 4):
        window = slice((page - 1) * 3, page * 3)
        mine = insp.list_pending_tasks("default", page=page, page_size=3)
        assert [t.id for t in mine] == go_pending[window]
        mine = insp.list_scheduled_tasks("default", page=page, page_size=3)
        assert [t.id for t in mine] == go_scheduled[window]
    assert len(insp.list_pending_tasks("default")) == 7  # asynq's page of 30


def test_ferroq_reruns_go_completed_and_retry_tasks(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    kept = go.enqueue("result:kept", b"v1", retention="1h")
    retry = go.enqueue("fail:again", b"r", max_retry=3)
    srv = go_server(retry_delay="1h")
    wait_until(lambda: state_of(insp, "default", kept["id"]) == TaskState.COMPLETED)
    wait_until(lambda: state_of(insp, "default", retry["id"]) == TaskState.RETRY)
    first = insp.get_task_info("default", kept["id"])
    assert first.result == b"v1"

    insp.run_task("default", kept["id"])  # a completed task can run again, as in asynq
    assert insp.run_all_retry_tasks("default") == 1
    wait_until(lambda: len(handled(srv, kept["id"])) == 2 and len(handled(srv, retry["id"])) == 2)
    assert [h["retry_count"] for h in handled(srv, retry["id"])] == [0, 1]
    t = wait_until(lambda: in_state(insp, "default", retry["id"], TaskState.RETRY, retried=2))
    assert t.last_error == "go handler failed"
    again = wait_until(lambda: in_state(insp, "default", kept["id"], TaskState.COMPLETED))
    assert again.result == b"v1"
    assert again.completed_at is not None and first.completed_at is not None
    assert again.completed_at >= first.completed_at
    qi = insp.get_queue_info("default")
    assert (qi.processed_total, qi.failed_total, qi.completed, qi.retry) == (4, 2, 1, 1)


def test_ferroq_sees_a_dead_go_servers_task_orphaned(
    go: GoAsynq, insp: Inspector, go_server: StartGo, r: redis.Redis
) -> None:
    srv = go_server()
    info = go.enqueue("block:x", b"")
    wait_until(lambda: handled(srv, info["id"]))
    srv.kill()  # SIGKILL: the task stays active, its lease runs out later
    (a,) = insp.list_active_tasks("default")
    assert (a.id, a.state, a.is_orphaned) == (info["id"], TaskState.ACTIVE, False)
    r.zadd("asynq:{default}:lease", {info["id"]: int(time.time()) - 5})  # the lease ran out
    (a,) = insp.list_active_tasks("default")
    assert a.is_orphaned is True
    (g,) = go.inspect("list", "default", "active")
    assert (g["id"], g["is_orphaned"]) == (info["id"], True)
    assert insp.get_task_info("default", info["id"]).is_orphaned is True
    for act in (insp.run_task, insp.archive_task, insp.delete_task):
        with pytest.raises(InvalidArgumentError, match="running"):
            act("default", info["id"])


def test_ferroq_deletes_a_go_queue(go: GoAsynq, insp: Inspector, r: redis.Redis) -> None:
    go.enqueue("ok:u", b"d", unique="1h", queue="doomed")
    go.enqueue("ok:g", b"g", group="gx", queue="doomed")
    go.enqueue("ok:s", b"s", process_in="1h", queue="doomed")
    kept = go.enqueue("ok:k", b"k", queue="kept")
    with pytest.raises(QueueNotEmptyError, match="1 pending, 1 scheduled"):
        insp.delete_queue("doomed")
    assert insp.get_queue_info("doomed").size == 3
    insp.delete_queue("doomed", force=True)
    assert insp.queues() == go.inspect("queues") == ["kept"]
    assert r.keys("asynq:{doomed}:*") == []
    with pytest.raises(QueueNotFoundError):
        insp.get_queue_info("doomed")
    with pytest.raises(GoError, match="does not exist"):
        go.inspect("queue", "doomed")
    # Its unique lock went with it: Go can enqueue the same unique task again.
    assert go.enqueue("ok:u", b"d", unique="1h", queue="doomed")["state"] == "pending"
    assert [t.id for t in insp.list_pending_tasks("kept")] == [kept["id"]]


def test_ferroq_delete_queue_spares_a_go_queue_whose_name_extends_it(
    go: GoAsynq, insp: Inspector
) -> None:
    go.enqueue("ok:a", b"a", queue="a")
    other = go.enqueue("ok:b", b"b", queue="a}:t:x")
    insp.delete_queue("a", force=True)
    assert [t.id for t in insp.list_pending_tasks("a}:t:x")] == [other["id"]]


# ---- servers and cancellation -------------------------------------------------------------


def test_ferroq_lists_a_go_server_and_cancels_its_task(
    go: GoAsynq, insp: Inspector, go_server: StartGo
) -> None:
    before = time.time()
    srv = go_server("default=2,low=1", concurrency="3", retry_delay="1h")
    info = go.enqueue("block:x", b"\x07", max_retry=2, timeout="90s")
    wait_until(lambda: handled(srv, info["id"]))
    # Go's heartbeat (every 5 s) publishes the worker.
    (s,) = wait_until(lambda: [x for x in insp.servers() if x.active_workers], timeout=12)
    assert (s.host, s.pid) == (socket.gethostname(), srv.proc.pid)
    assert s.pid != os.getpid()
    assert (s.concurrency, s.queues, s.strict_priority, s.status) == (
        3, {"default": 2, "low": 1}, False, "active",
    )  # fmt: skip
    assert s.started is not None
    assert before - 2 <= s.started.timestamp() <= time.time()
    (gs,) = go.inspect("servers")
    assert gs["id"] == s.id
    (w,) = s.active_workers
    assert (w.task_id, w.task_type, w.task_payload, w.queue) == (
        info["id"], "block:x", b"\x07", "default",
    )  # fmt: skip
    assert w.started is not None and w.deadline is not None
    assert before - 2 <= w.started.timestamp() <= time.time()
    assert w.deadline.timestamp() == pytest.approx(w.started.timestamp() + 90, abs=3)
    (a,) = insp.list_active_tasks("default")
    assert (a.id, a.state, a.is_orphaned) == (info["id"], TaskState.ACTIVE, False)
    assert_reads_as_go(go, a)
    with pytest.raises(InvalidArgumentError):
        insp.delete_task("default", info["id"])  # running: cancel it first

    assert insp.cancel_processing(info["id"]) == 1  # the Go server listens
    t = wait_until(lambda: in_state(insp, "default", info["id"], TaskState.RETRY))
    assert (t.last_error, t.retried) == ("context canceled", 1)
    assert_reads_as_go(go, t)
    assert insp.list_active_tasks("default") == []
    srv.stop()
    assert insp.servers() == []
    assert insp.cancel_processing(info["id"]) == 0  # no server listens any more


# ---- a Go scheduler ----------------------------------------------------------------------


def test_ferroq_reads_a_go_schedulers_entry_and_history(go: GoAsynq, insp: Inspector) -> None:
    sched = go.schedule("@every 1s", "ok:go-periodic", queue="cronq")
    try:
        eid = sched.started["entry_id"]
        (e,) = wait_until(lambda: [e for e in insp.scheduler_entries() if e.prev_enqueue_at])
        assert (e.id, e.spec, e.task_type, e.task_payload, e.queue) == (
            eid, "@every 1s", "ok:go-periodic", b"", "cronq",
        )  # fmt: skip
        assert 'Queue("cronq")' in e.enqueue_options
        assert e.next_enqueue_at is not None and e.prev_enqueue_at is not None
        assert e.prev_enqueue_at < e.next_enqueue_at
        assert e.prev_enqueue_at.timestamp() == pytest.approx(time.time(), abs=3)
        (ge,) = go.inspect("cron")
        assert (ge["id"], ge["opts"]) == (e.id, e.enqueue_options)

        def same_history() -> list[dict[str, Any]] | None:
            theirs: list[dict[str, Any]] = go.inspect("history", eid)
            mine = insp.list_scheduler_enqueue_events(eid, page_size=1000)
            ok = theirs == go.inspect("history", eid) and [ev.task_id for ev in mine] == [
                h["task_id"] for h in theirs
            ]
            if not ok:
                return None
            for ev, h in zip(mine, theirs, strict=True):
                assert int(ev.enqueued_at.timestamp()) == h["enqueued_at"]
            return theirs

        wait_until(lambda: len(go.inspect("history", eid)) >= 2, timeout=15)
        history = wait_until(same_history)
        mine = insp.list_scheduler_enqueue_events(eid)
        assert [ev.enqueued_at for ev in mine] == sorted(
            (ev.enqueued_at for ev in mine), reverse=True
        )  # newest first
        pending = {t.id for t in insp.list_pending_tasks("cronq", page_size=1000)}
        assert {h["task_id"] for h in history} <= pending
        assert all(t.type == "ok:go-periodic" for t in insp.list_pending_tasks("cronq"))
    finally:
        sched.stop()
    assert insp.scheduler_entries() == []
