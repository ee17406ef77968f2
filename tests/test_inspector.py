"""``ferroq.Inspector`` against real Redis: every method, its errors, and what each write leaves
in Redis, observed with redis-py and the independent protobuf reader in ``wire.py``."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any, cast

import pytest
import redis

import wire
from client_helpers import (
    CLOSED_PORT_URL,
    keys,
    lrange,
    qkey,
    smembers,
    snapshot,
    stored,
    task_hash,
    task_key,
    unique_key,
    zrange,
)
from ferroq import (
    BrokerConnectionError,
    BrokerError,
    Client,
    CronSchedule,
    Inspector,
    InvalidArgumentError,
    MalformedMessageError,
    QueueNotEmptyError,
    QueueNotFoundError,
    Scheduler,
    Server,
    Task,
    TaskInfo,
    TaskNotFoundError,
    TaskState,
)
from server_helpers import Holder, MakeServer, counter, empty_active, mux_of, state, today
from util import wait_until

Q = "default"
GARBAGE = b"\xff\xff\xff\xff not a protobuf"
ZSET_STATES = ("scheduled", "retry", "archived", "completed")


@pytest.fixture
def insp(redis_url: str) -> Iterator[Inspector]:
    with Inspector(redis_url) as i:
        yield i


# ---- helpers -------------------------------------------------------------------------------


def near(dt: datetime | None, when: float, tol: float = 5.0) -> bool:
    """``dt`` is an aware datetime within ``tol`` seconds of the Unix time ``when``."""
    return dt is not None and dt.tzinfo is not None and abs(dt.timestamp() - when) <= tol


def ids(infos: list[TaskInfo]) -> list[str]:
    return [i.id for i in infos]


def zscore(r: redis.Redis, key: str, member: str) -> float | None:
    return r.zscore(key, member)


def where(r: redis.Redis, task_id: str, q: str = Q) -> set[str]:
    """Every container of ``q`` that holds ``task_id`` (groups as ``g:<name>``)."""
    out = {c for c in ("pending", "active") if task_id in lrange(r, qkey(q, c))}
    out |= {c for c in (*ZSET_STATES, "lease") if zscore(r, qkey(q, c), task_id) is not None}
    for g in smembers(r, qkey(q, "groups")):
        if zscore(r, qkey(q, f"g:{g}"), task_id) is not None:
            out.add(f"g:{g}")
    return out


def move(r: redis.Redis, task_id: str, to: str, score: float | None = None, q: str = Q) -> None:
    """Moves a task by hand (redis-py) to ``to``: a list pushed at the head (the newest end),
    or a zset at ``score``; the hash's state follows."""
    for c in ZSET_STATES:
        r.zrem(qkey(q, c), task_id)
    for c in ("pending", "active"):
        r.lrem(qkey(q, c), 0, task_id)
    if to in ("pending", "active"):
        r.lpush(qkey(q, to), task_id)
    else:
        r.zadd(qkey(q, to), {task_id: score if score is not None else time.time()})
    r.hset(task_key(task_id, q), "state", to)


def make_active(
    r: redis.Redis, client: Client, lease: float | None, q: str = Q, task_type: str = "act"
) -> str:
    """A task as a server holds it: in active, state active, a lease entry expiring at
    ``lease`` (none when None), no pending_since."""
    tid = client.enqueue(Task(task_type), queue=q).id
    move(r, tid, "active", q=q)
    r.hdel(task_key(tid, q), "pending_since")
    if lease is not None:
        r.zadd(qkey(q, "lease"), {tid: lease})
    return tid


def populate(client: Client, r: redis.Redis, make_server: MakeServer) -> dict[str, str]:
    """One real task in each state but active, in ``default``; returns state → task id.

    A server makes the completed (result written, an hour of retention), archived
    (``max_retry=0``) and retry (retry in an hour) tasks; the others are enqueued after it
    stopped.
    """

    def ok(task: Task) -> None:
        task.write_result(b"result:" + task.payload)

    def fail(task: Task) -> None:
        raise ValueError("boom")

    out = {
        "completed": client.enqueue(Task("ok", b"c"), retention=3600).id,
        "archived": client.enqueue(Task("fail", b"a"), max_retry=0).id,
        "retry": client.enqueue(Task("fail", b"r"), max_retry=5).id,
    }
    s = make_server(retry_delay=lambda n, e, t: 3600)
    s.start(mux_of({"ok": ok, "fail": fail}))
    wait_until(lambda: counter(r, qkey(Q, "processed")) == 3 and empty_active(r))
    s.shutdown()
    for st, tid in out.items():
        assert state(r, tid) == st
    out["pending"] = client.enqueue(Task("p", b"p")).id
    out["scheduled"] = client.enqueue(Task("s", b"s"), process_in=3600).id
    out["aggregating"] = client.enqueue(Task("g", b"g"), group="grp").id
    return out


def queue_keys(r: redis.Redis, q: str) -> set[str]:
    """The keys of ``q``: under its prefix, and not under that of a queue whose name starts
    with ``q}:``."""
    prefix = f"asynq:{{{q}}}:"
    longer = [f"asynq:{{{o}}}:" for o in smembers(r, "asynq:queues") if o.startswith(q + "}:")]
    return {k for k in keys(r) if k.startswith(prefix) and not any(map(k.startswith, longer))}


# ---- queues --------------------------------------------------------------------------------


def test_queues_are_the_registered_names_sorted(client: Client, insp: Inspector) -> None:
    assert insp.queues() == []
    for q in ("b", "a", "c"):
        client.enqueue(Task("t"), queue=q)
    assert insp.queues() == ["a", "b", "c"]


def test_queue_info_counts_every_state_and_the_day(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    populate(client, r, make_server)
    before = time.time()
    info = insp.get_queue_info(Q)
    assert info.queue == Q
    counts = (
        info.pending, info.active, info.scheduled, info.retry, info.archived, info.completed,
        info.aggregating, info.groups,
    )  # fmt: skip
    assert counts == (1, 0, 1, 1, 1, 1, 1, 1)
    assert info.size == 6
    # Two failures and a success: all three processed, two failed (today and in total).
    assert (info.processed, info.failed, info.processed_total, info.failed_total) == (3, 2, 3, 2)
    assert info.paused is False
    assert isinstance(info.memory_usage, int) and info.memory_usage > 0
    assert near(info.timestamp, before)
    assert isinstance(info.latency, timedelta) and info.latency >= timedelta(0)
    assert insp.get_queue_info(Q, memory=False).memory_usage is None
    insp.pause_queue(Q)
    assert insp.get_queue_info(Q).paused is True


def test_queue_info_counters_someone_overwrote_read_as_zero(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"))
    r.set(qkey(Q, "processed"), "not a number")
    r.set(qkey(Q, f"failed:{today()}"), "12")
    info = insp.get_queue_info(Q)
    assert (info.processed_total, info.failed) == (0, 12)


def test_latency_is_the_wait_of_the_oldest_pending_task(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("later"), process_in=3600)
    assert insp.get_queue_info(Q).latency == timedelta(0), "nothing pending: no latency"
    first = client.enqueue(Task("t", b"1")).id
    time.sleep(0.05)
    assert insp.get_queue_info(Q, memory=False).latency >= timedelta(seconds=0.05)
    second = client.enqueue(Task("t", b"2")).id
    now_ns = time.time_ns()
    r.hset(task_key(first), "pending_since", now_ns - 30 * 10**9)
    r.hset(task_key(second), "pending_since", now_ns - 100 * 10**9)
    # The oldest pending task is the first enqueued (the tail of the list), whatever the others.
    latency = insp.get_queue_info(Q).latency.total_seconds()
    assert 29 <= latency <= 35


def test_queue_infos_of_every_queue_or_of_those_named(client: Client, insp: Inspector) -> None:
    assert insp.get_queue_infos() == []
    client.enqueue(Task("t"), queue="a")
    client.enqueue_many([Task("t"), Task("t")], queue="b")
    every = insp.get_queue_infos()
    assert [(i.queue, i.pending) for i in every] == [("a", 1), ("b", 2)]
    assert all(i.memory_usage is None for i in every), "no memory sampling by default"
    named = insp.get_queue_infos(["b", "a"], memory=True)
    assert [i.queue for i in named] == ["b", "a"]
    assert all(isinstance(i.memory_usage, int) and i.memory_usage > 0 for i in named)
    assert insp.get_queue_infos([]) == []
    with pytest.raises(QueueNotFoundError):
        insp.get_queue_infos(["a", "nope"])


def test_history_reads_the_daily_counters_newest_first(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"))
    day = datetime.now(timezone.utc).date()
    days = [day - timedelta(days=n) for n in range(4)]
    for d, (p, f) in zip(days, [(5, 2), (7, 0), (9, 1), (11, 11)], strict=True):
        r.set(qkey(Q, f"processed:{d.isoformat()}"), p)
        r.set(qkey(Q, f"failed:{d.isoformat()}"), f)
    r.set(qkey(Q, f"failed:{days[1].isoformat()}"), "garbage")
    h = insp.history(Q, 3)
    assert all(isinstance(s.date, date) and s.queue == Q for s in h)
    assert [(s.date, s.processed, s.failed) for s in h] == [
        (days[0], 5, 2),
        (days[1], 7, 0),
        (days[2], 9, 1),
    ]
    assert [(s.date, s.processed) for s in insp.history(Q, 1)] == [(days[0], 5)]
    week = insp.history(Q, 7)
    assert [s.date for s in week] == [day - timedelta(days=n) for n in range(7)]
    assert [s.processed for s in week[4:]] == [0, 0, 0], "days without counters read 0"
    for bad in (0, -1, 3651):
        with pytest.raises(InvalidArgumentError):
            insp.history(Q, bad)
    with pytest.raises(QueueNotFoundError):
        insp.history("nope", 1)


def test_groups_with_their_sizes_by_name(client: Client, insp: Inspector) -> None:
    client.enqueue(Task("t"))
    assert insp.groups(Q) == []
    for g in ("g2", "g1", "g1"):
        client.enqueue(Task("t"), group=g)
    assert [(g.group, g.size) for g in insp.groups(Q)] == [("g1", 2), ("g2", 1)]


# ---- delete_queue --------------------------------------------------------------------------


def _hold(r: redis.Redis, client: Client, insp: Inspector, what: str) -> None:
    """Puts one task of ``what`` in ``default``."""
    if what == "pending":
        client.enqueue(Task("t"))
    elif what == "scheduled":
        client.enqueue(Task("t"), process_in=3600)
    elif what == "aggregating":
        client.enqueue(Task("t"), group="g")
    elif what == "archived":
        insp.archive_task(Q, client.enqueue(Task("t")).id)
    elif what == "retry":
        move(r, client.enqueue(Task("t"), process_in=3600).id, "retry", time.time() + 60)
    else:
        raise AssertionError(what)


@pytest.mark.parametrize("what", ["pending", "scheduled", "retry", "archived", "aggregating"])
def test_delete_queue_without_force_refuses_a_queue_with_tasks(
    client: Client, r: redis.Redis, insp: Inspector, what: str
) -> None:
    _hold(r, client, insp, what)
    before = snapshot(r)
    with pytest.raises(QueueNotEmptyError):
        insp.delete_queue(Q)
    assert snapshot(r) == before, "a refused deletion writes nothing"
    assert insp.queues() == [Q]


def test_delete_queue_without_force_takes_an_empty_or_completed_only_queue(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    done = client.enqueue(Task("t"), process_in=3600).id
    move(r, done, "completed", time.time() + 3600)
    insp.delete_task("empty", client.enqueue(Task("t"), queue="empty").id)
    assert insp.queues() == ["default", "empty"]
    insp.delete_queue("empty")
    insp.delete_queue(Q)  # completed tasks are history: they go with the queue
    assert insp.queues() == []
    assert keys(r) == set()
    with pytest.raises(QueueNotFoundError):
        insp.delete_queue(Q)


def test_delete_queue_with_force_deletes_every_key_of_the_queue_and_no_other(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    populate(client, r, make_server)
    client.enqueue(Task("u", b"x"), unique=60)
    r.set(qkey(Q, "periodic:entry"), 1)
    r.set(qkey(Q, f"processed:{today()}"), 3)
    insp.pause_queue(Q)
    # Neighbours: another queue, and one whose name starts with "default}:".
    client.enqueue(Task("t"), queue="other", unique=60)
    client.enqueue(Task("t"), queue="default}:b", process_in=60)
    client.enqueue(Task("t"), queue="default}:b", group="g")
    mine = queue_keys(r, Q)
    theirs = {k: v for k, v in snapshot(r).items() if k not in mine}
    del theirs["asynq:queues"]
    assert len(mine) >= 14 and qkey(Q, "t:") not in mine

    insp.delete_queue(Q, force=True)

    assert queue_keys(r, Q) == set()
    assert smembers(r, "asynq:queues") == {"other", "default}:b"}
    after = snapshot(r)
    del after["asynq:queues"]
    assert after == theirs, "the other queues' keys are untouched"
    assert insp.queues() == ["default}:b", "other"]
    with pytest.raises(QueueNotFoundError):
        insp.get_queue_info(Q)


def test_delete_queue_leaves_a_queue_named_like_one_of_its_key_prefixes(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"), queue="a")
    kept = client.enqueue(Task("t"), queue="a}:t:x").id
    insp.delete_queue("a", force=True)
    assert insp.get_task_info("a}:t:x", kept).state == TaskState.PENDING
    assert lrange(r, qkey("a}:t:x", "pending")) == [kept]


def test_delete_queue_matches_its_own_name_only(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    """Glob characters in a queue name match themselves in the key scan."""
    for q in ("q*", "q?", "[q]", "q\\", "qx", "q"):
        client.enqueue(Task("t"), queue=q)
    for q in ("q*", "q?", "[q]", "q\\"):
        others = {k: v for k, v in snapshot(r).items() if k not in queue_keys(r, q)}
        del others["asynq:queues"]
        insp.delete_queue(q, force=True)
        after = snapshot(r)
        del after["asynq:queues"]
        assert after == others, q
    assert insp.queues() == ["q", "qx"]
    assert [i.pending for i in insp.get_queue_infos()] == [1, 1]


def test_delete_queue_is_not_left_half_done_by_a_key_that_is_not_text(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"), process_in=60)
    r.set(qkey(Q, "t:").encode() + b"\xff\xfe", b"x")
    insp.delete_queue(Q, force=True)
    assert queue_keys(r, Q) == set()
    assert insp.queues() == []


def test_delete_queue_never_deletes_a_queue_with_active_tasks(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    make_active(r, client, lease=time.time() + 60)
    client.enqueue(Task("t"))
    before = snapshot(r)
    for force in (False, True):
        with pytest.raises(QueueNotEmptyError, match="active"):
            insp.delete_queue(Q, force=force)
    assert snapshot(r) == before


# ---- pause ---------------------------------------------------------------------------------


def test_pause_and_unpause_set_and_clear_the_flag(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"))
    insp.pause_queue(Q)
    flag = r.get(qkey(Q, "paused"))
    assert flag is not None and abs(int(flag) - time.time()) <= 5
    with pytest.raises(InvalidArgumentError):
        insp.pause_queue(Q)
    assert r.get(qkey(Q, "paused")) == flag
    insp.unpause_queue(Q)
    assert not r.exists(qkey(Q, "paused"))
    assert insp.get_queue_info(Q).paused is False
    with pytest.raises(InvalidArgumentError):
        insp.unpause_queue(Q)


def test_a_paused_queue_is_not_served_until_unpaused(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    seen: list[str] = []
    held = client.enqueue(Task("t", b"held"), queue="pq").id
    insp.pause_queue("pq")
    make_server(queues={"pq": 1, "live": 1}).start(mux_of({"t": lambda t: seen.append(t.queue)}))
    client.enqueue(Task("t", b"live"), queue="live")
    wait_until(lambda: seen == ["live"])
    time.sleep(0.3)  # several polls of the server (every 0.05 s)
    assert seen == ["live"]
    assert lrange(r, qkey("pq", "pending")) == [held]
    insp.unpause_queue("pq")
    wait_until(lambda: seen == ["live", "pq"])
    wait_until(lambda: not r.exists(task_key(held, "pq")))


# ---- unknown queues ------------------------------------------------------------------------


def test_every_call_naming_an_unknown_queue_raises_queue_not_found(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    tid = client.enqueue(Task("t"), process_in=60).id
    calls: list[Callable[[str], object]] = [
        lambda q: insp.get_queue_info(q),
        lambda q: insp.get_queue_info(q, memory=False),
        lambda q: insp.get_queue_infos([q]),
        lambda q: insp.history(q, 1),
        lambda q: insp.groups(q),
        lambda q: insp.delete_queue(q),
        lambda q: insp.delete_queue(q, force=True),
        lambda q: insp.pause_queue(q),
        lambda q: insp.unpause_queue(q),
        lambda q: insp.get_task_info(q, tid),
        lambda q: insp.list_pending_tasks(q),
        lambda q: insp.list_active_tasks(q),
        lambda q: insp.list_scheduled_tasks(q),
        lambda q: insp.list_retry_tasks(q),
        lambda q: insp.list_archived_tasks(q),
        lambda q: insp.list_completed_tasks(q),
        lambda q: insp.list_aggregating_tasks(q, "g"),
        lambda q: insp.list_tasks(q, "pending"),
        lambda q: insp.run_task(q, tid),
        lambda q: insp.archive_task(q, tid),
        lambda q: insp.delete_task(q, tid),
        lambda q: insp.update_task_payload(q, tid, b"x"),
        lambda q: insp.run_all_scheduled_tasks(q),
        lambda q: insp.run_all_retry_tasks(q),
        lambda q: insp.run_all_archived_tasks(q),
        lambda q: insp.run_all_aggregating_tasks(q, "g"),
        lambda q: insp.archive_all_pending_tasks(q),
        lambda q: insp.archive_all_scheduled_tasks(q),
        lambda q: insp.archive_all_retry_tasks(q),
        lambda q: insp.archive_all_aggregating_tasks(q, "g"),
        lambda q: insp.delete_all_pending_tasks(q),
        lambda q: insp.delete_all_scheduled_tasks(q),
        lambda q: insp.delete_all_retry_tasks(q),
        lambda q: insp.delete_all_archived_tasks(q),
        lambda q: insp.delete_all_completed_tasks(q),
        lambda q: insp.delete_all_aggregating_tasks(q, "g"),
        lambda q: insp.run_all(q, TaskState.SCHEDULED),
        lambda q: insp.archive_all(q, "pending"),
        lambda q: insp.delete_all(q, "archived"),
    ]
    before = snapshot(r)
    for call in calls:
        with pytest.raises(QueueNotFoundError, match="nope"):
            call("nope")
    assert snapshot(r) == before
    assert insp.queues() == [Q]


# ---- get_task_info -------------------------------------------------------------------------


def test_task_info_in_every_state(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    t = populate(client, r, make_server)
    now = time.time()

    p = insp.get_task_info(Q, t["pending"])
    assert (p.id, p.queue, p.type, p.payload, p.state) == (
        t["pending"], Q, "p", b"p", TaskState.PENDING,
    )  # fmt: skip
    assert near(p.next_process_at, now, 2)
    assert (p.max_retry, p.retried, p.last_error, p.last_failed_at) == (25, 0, None, None)
    assert p.timeout == timedelta(minutes=30) and p.result is None and not p.is_orphaned

    s = insp.get_task_info(Q, t["scheduled"])
    score = zscore(r, qkey(Q, "scheduled"), t["scheduled"])
    assert s.state == TaskState.SCHEDULED and score is not None
    assert s.next_process_at == datetime.fromtimestamp(score, timezone.utc)
    assert near(s.next_process_at, now + 3600)

    rt = insp.get_task_info(Q, t["retry"])
    score = zscore(r, qkey(Q, "retry"), t["retry"])
    assert rt.state == TaskState.RETRY and score is not None
    assert rt.next_process_at == datetime.fromtimestamp(score, timezone.utc)
    assert (rt.last_error, rt.retried, rt.max_retry) == ("ValueError: boom", 1, 5)
    assert near(rt.last_failed_at, now)

    c = insp.get_task_info(Q, t["completed"])
    assert (c.state, c.result, c.retention) == (
        TaskState.COMPLETED, b"result:c", timedelta(hours=1),
    )  # fmt: skip
    assert near(c.completed_at, now) and c.next_process_at is None and c.last_error is None

    a = insp.get_task_info(Q, t["archived"])
    assert (a.state, a.last_error, a.next_process_at) == (
        TaskState.ARCHIVED, "ValueError: boom", None,
    )  # fmt: skip
    assert near(a.last_failed_at, now) and a.completed_at is None

    g = insp.get_task_info(Q, t["aggregating"])
    assert (g.state, g.group, g.payload) == (TaskState.AGGREGATING, "grp", b"g")


def test_task_info_of_an_active_task_tells_orphans(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    live = make_active(r, client, lease=time.time() + 60)
    expired = make_active(r, client, lease=time.time() - 10)
    unleased = make_active(r, client, lease=None)
    assert insp.get_task_info(Q, live).state == TaskState.ACTIVE
    orphaned = {tid: insp.get_task_info(Q, tid).is_orphaned for tid in (live, expired, unleased)}
    assert orphaned == {live: False, expired: True, unleased: True}
    listed = {i.id: i.is_orphaned for i in insp.list_active_tasks(Q)}
    assert listed == orphaned
    assert insp.get_task_info(Q, live).next_process_at is None


def test_a_running_task_is_orphaned_once_its_lease_entry_goes(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    h = Holder()
    tid = client.enqueue(Task("hold")).id
    # A slow heartbeat: the lease is not renewed while the test looks.
    make_server(heartbeat_interval=5).start(mux_of({"hold": h}))
    try:
        assert h.started.wait(10)
        info = insp.get_task_info(Q, tid)
        assert (info.state, info.is_orphaned) == (TaskState.ACTIVE, False)
        r.zrem(qkey(Q, "lease"), tid)
        assert insp.get_task_info(Q, tid).is_orphaned is True
    finally:
        h.release.set()


def test_task_info_of_a_missing_or_undecodable_task(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    tid = client.enqueue(Task("t")).id
    with pytest.raises(TaskNotFoundError):
        insp.get_task_info(Q, "no-such-task")
    with pytest.raises(QueueNotFoundError):
        insp.get_task_info("nope", tid)
    r.hset(task_key(tid), "msg", GARBAGE)
    with pytest.raises(MalformedMessageError):
        insp.get_task_info(Q, tid)
    r.hdel(task_key(tid), "msg")
    with pytest.raises(MalformedMessageError):
        insp.get_task_info(Q, tid)


# ---- listings ------------------------------------------------------------------------------


def test_list_pending_tasks_oldest_first_in_pages(client: Client, insp: Inspector) -> None:
    made = [client.enqueue(Task("t", str(n).encode())).id for n in range(5)]
    listed = insp.list_pending_tasks(Q)
    assert ids(listed) == made
    assert all(i.state == TaskState.PENDING for i in listed)
    assert [i.payload for i in listed] == [b"0", b"1", b"2", b"3", b"4"]
    assert ids(insp.list_pending_tasks(Q, page=1, page_size=2)) == made[:2]
    assert ids(insp.list_pending_tasks(Q, page=2, page_size=2)) == made[2:4]
    assert ids(insp.list_pending_tasks(Q, page=3, page_size=2)) == made[4:]
    assert insp.list_pending_tasks(Q, page=4, page_size=2) == []
    assert ids(insp.list_tasks(Q, "pending", page=2, page_size=3)) == made[3:]
    assert ids(insp.list_tasks(Q, TaskState.PENDING)) == made


def test_default_page_size_is_asynqs(client: Client, insp: Inspector) -> None:
    made = [i.id for i in client.enqueue_many([Task("t") for _ in range(35)])]
    assert ids(insp.list_pending_tasks(Q)) == made[:30]
    assert ids(insp.list_pending_tasks(Q, page=2)) == made[30:]


def test_list_active_tasks_oldest_first(client: Client, r: redis.Redis, insp: Inspector) -> None:
    made = [make_active(r, client, lease=time.time() + 60) for _ in range(3)]
    assert ids(insp.list_active_tasks(Q)) == made
    assert ids(insp.list_active_tasks(Q, page=2, page_size=2)) == made[2:]


@pytest.mark.parametrize("st", ZSET_STATES)
def test_zset_listings_go_by_score_in_pages(
    client: Client, r: redis.Redis, insp: Inspector, st: str
) -> None:
    listing = {
        "scheduled": insp.list_scheduled_tasks,
        "retry": insp.list_retry_tasks,
        "archived": insp.list_archived_tasks,
        "completed": insp.list_completed_tasks,
    }[st]
    base = int(time.time()) + 1000  # whole seconds, as servers write them
    made = [client.enqueue(Task("t", bytes([n])), process_in=60).id for n in range(4)]
    scores = [base + 30, base + 10, base + 40, base + 20]
    for tid, sc in zip(made, scores, strict=True):
        move(r, tid, st, sc)
        r.hset(task_key(tid), "result", b"r" + tid.encode())
    order = [made[1], made[3], made[0], made[2]]
    listed = listing(Q)
    assert ids(listed) == order
    assert all(i.state == TaskState(st) for i in listed)
    assert [i.result for i in listed] == [b"r" + tid.encode() for tid in order]
    if st in ("scheduled", "retry"):
        assert [i.next_process_at for i in listed] == [
            datetime.fromtimestamp(s, timezone.utc) for s in sorted(scores)
        ]
    else:
        assert all(i.next_process_at is None for i in listed)
    assert ids(listing(Q, page=2, page_size=2)) == order[2:]
    assert ids(listing(Q, page=2, page_size=3)) == order[3:]
    assert listing(Q, page=3, page_size=2) == []
    assert ids(insp.list_tasks(Q, st, page_size=1)) == order[:1]


def test_list_aggregating_tasks_of_a_group_first_added_first(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    made = []
    for n in range(3):
        made.append(client.enqueue(Task("t"), group="g1").id)
        r.zadd(qkey(Q, "g:g1"), {made[-1]: 1000 + n})  # distinct times, in order
    other = client.enqueue(Task("t"), group="g2").id
    listed = insp.list_aggregating_tasks(Q, "g1")
    assert ids(listed) == made
    assert all((i.state, i.group) == (TaskState.AGGREGATING, "g1") for i in listed)
    assert ids(insp.list_aggregating_tasks(Q, "g1", page=2, page_size=2)) == made[2:]
    assert ids(insp.list_aggregating_tasks(Q, "g2")) == [other]
    assert insp.list_aggregating_tasks(Q, "none") == []
    assert ids(insp.list_tasks(Q, "aggregating", group="g2")) == [other]
    with pytest.raises(InvalidArgumentError):
        insp.list_tasks(Q, "aggregating")


def test_every_listing_returns_its_real_task(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    t = populate(client, r, make_server)
    got = {
        "pending": insp.list_pending_tasks(Q),
        "scheduled": insp.list_scheduled_tasks(Q),
        "retry": insp.list_retry_tasks(Q),
        "archived": insp.list_archived_tasks(Q),
        "completed": insp.list_completed_tasks(Q),
        "aggregating": insp.list_aggregating_tasks(Q, "grp"),
    }
    assert {st: ids(v) for st, v in got.items()} == {st: [tid] for st, tid in t.items()}
    assert insp.list_active_tasks(Q) == []
    (c,) = got["completed"]
    assert (c.result, c.state) == (b"result:c", TaskState.COMPLETED)
    assert got["retry"][0].last_error == "ValueError: boom"
    assert got["archived"][0] == insp.get_task_info(Q, t["archived"])


def test_pages_out_of_range_are_refused(client: Client, insp: Inspector) -> None:
    client.enqueue(Task("t"))
    listings: list[Callable[..., list[TaskInfo]]] = [
        insp.list_pending_tasks,
        insp.list_active_tasks,
        insp.list_scheduled_tasks,
        insp.list_retry_tasks,
        insp.list_archived_tasks,
        insp.list_completed_tasks,
        lambda q, **kw: insp.list_aggregating_tasks(q, "g", **kw),
        lambda q, **kw: insp.list_tasks(q, "pending", **kw),
    ]
    for listing in listings:
        for kw in ({"page": 0}, {"page": -1}, {"page_size": 0}, {"page_size": 10_001}):
            with pytest.raises(InvalidArgumentError):
                listing(Q, **kw)
        assert isinstance(listing(Q, page=1, page_size=10_000), list)
    with pytest.raises(InvalidArgumentError):
        insp.list_scheduler_enqueue_events("e", page=0)
    with pytest.raises(ValueError):
        insp.list_tasks(Q, "bogus")


def test_listings_skip_tasks_that_cannot_be_read(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    pend = [client.enqueue(Task("t", bytes([n]))).id for n in range(3)]
    r.hset(task_key(pend[1]), "msg", GARBAGE)
    r.lpush(qkey(Q, "pending"), "ghost")  # an id without a hash
    assert ids(insp.list_pending_tasks(Q)) == [pend[0], pend[2]]
    sched = [client.enqueue(Task("t", bytes([n])), process_in=60 + n).id for n in range(3)]
    r.hset(task_key(sched[0]), "msg", GARBAGE)
    assert ids(insp.list_scheduled_tasks(Q)) == sched[1:]
    insp.archive_task(Q, sched[2])
    r.hset(task_key(sched[2]), "msg", b"")  # an empty message is no task either
    r.zadd(qkey(Q, "archived"), {"ghost": 1})
    assert insp.list_archived_tasks(Q) == []
    # The undecodable task can still be deleted.
    insp.delete_task(Q, pend[1])
    assert not r.exists(task_key(pend[1])) and pend[1] not in lrange(r, qkey(Q, "pending"))


# ---- run / archive / delete one task -------------------------------------------------------


@pytest.mark.parametrize("st", ["scheduled", "retry", "archived", "completed", "aggregating"])
def test_run_task_moves_it_to_pending(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector, st: str
) -> None:
    t = populate(client, r, make_server)
    tid = t[st]
    before_ns = time.time_ns()
    insp.run_task(Q, tid)
    assert where(r, tid) == {"pending"}
    assert lrange(r, qkey(Q, "pending"))[0] == tid, "pushed at the newest end"
    h = task_hash(r, tid)
    assert h["state"] == b"pending"
    assert before_ns - 10**9 <= int(h["pending_since"]) <= time.time_ns() + 10**9
    assert insp.get_task_info(Q, tid).state == TaskState.PENDING
    if st == "aggregating":
        assert not r.exists(qkey(Q, "g:grp")) and not r.exists(qkey(Q, "groups"))
    # The other tasks did not move.
    for other, otid in t.items():
        if otid != tid:
            assert state(r, otid) == other


@pytest.mark.parametrize("st", ["pending", "scheduled", "retry", "completed", "aggregating"])
def test_archive_task_moves_it_to_the_archive(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector, st: str
) -> None:
    t = populate(client, r, make_server)
    tid = t[st]
    insp.archive_task(Q, tid)
    assert where(r, tid) == {"archived"}
    score = zscore(r, qkey(Q, "archived"), tid)
    assert score is not None and abs(score - time.time()) <= 5
    assert state(r, tid) == "archived"
    assert stored(r, tid)["id"] == tid, "the message is kept"
    assert insp.get_task_info(Q, tid).state == TaskState.ARCHIVED
    assert set(ids(insp.list_archived_tasks(Q))) == {tid, t["archived"]}
    if st == "aggregating":
        assert not r.exists(qkey(Q, "groups"))


@pytest.mark.parametrize(
    "st", ["pending", "scheduled", "retry", "archived", "completed", "aggregating"]
)
def test_delete_task_deletes_it(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector, st: str
) -> None:
    t = populate(client, r, make_server)
    tid = t[st]
    insp.delete_task(Q, tid)
    assert not r.exists(task_key(tid))
    assert where(r, tid) == set()
    with pytest.raises(TaskNotFoundError):
        insp.get_task_info(Q, tid)
    assert insp.get_queue_info(Q).size == 5
    if st == "aggregating":
        assert not r.exists(qkey(Q, "groups"))


def test_single_task_actions_its_state_forbids_change_nothing(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    active = make_active(r, client, lease=time.time() + 60)
    pending = client.enqueue(Task("t")).id
    archived = client.enqueue(Task("t")).id
    insp.archive_task(Q, archived)
    before = snapshot(r)
    refused: list[tuple[Callable[[str, str], None], str]] = [
        (insp.run_task, active),
        (insp.archive_task, active),
        (insp.delete_task, active),
        (insp.run_task, pending),
        (insp.archive_task, archived),
    ]
    for call, tid in refused:
        with pytest.raises(InvalidArgumentError):
            call(Q, tid)
    assert snapshot(r) == before


def test_single_task_actions_on_a_missing_task(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    tid = client.enqueue(Task("t"), process_in=60).id
    before = snapshot(r)
    for call in (insp.run_task, insp.archive_task, insp.delete_task):
        with pytest.raises(TaskNotFoundError):
            call(Q, "no-such-task")
        with pytest.raises(TaskNotFoundError):
            call(Q, tid + "x")
    assert snapshot(r) == before


def test_delete_task_releases_its_unique_lock(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    p = client.enqueue(Task("u", b"p"), unique=60).id
    s = client.enqueue(Task("u", b"s"), unique=60, process_in=3600).id
    g = client.enqueue(Task("u", b"g"), unique=60, group="grp").id
    for tid, payload in ((p, b"p"), (s, b"s"), (g, b"g")):
        lock = unique_key(Q, "u", payload)
        assert r.get(lock) == tid.encode()
        insp.delete_task(Q, tid)
        assert not r.exists(lock), f"lock of {payload!r} released"
    # The same tasks can be enqueued again.
    client.enqueue(Task("u", b"p"), unique=60)
    client.enqueue(Task("u", b"s"), unique=60, process_in=3600)


def test_delete_task_leaves_a_lock_another_task_holds(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    tid = client.enqueue(Task("u", b"p"), unique=60).id
    lock = unique_key(Q, "u", b"p")
    r.set(lock, "someone-else", ex=60)
    insp.delete_task(Q, tid)
    assert r.get(lock) == b"someone-else"


# ---- bulk ----------------------------------------------------------------------------------


def test_run_all_moves_every_task_of_a_state(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    sched = [client.enqueue(Task("t"), process_in=3600 + n).id for n in range(3)]
    retry = [client.enqueue(Task("t"), process_in=60).id for _ in range(2)]
    for tid in retry:
        move(r, tid, "retry", time.time() + 60)
    arch = [client.enqueue(Task("t")).id for _ in range(2)]
    assert insp.archive_all_pending_tasks(Q) == 2
    g1 = [client.enqueue(Task("t"), group="g1").id for _ in range(2)]
    g2 = client.enqueue(Task("t"), group="g2").id

    assert insp.run_all_scheduled_tasks(Q) == 3
    assert insp.run_all_retry_tasks(Q) == 2
    assert insp.run_all_archived_tasks(Q) == 2
    assert insp.run_all_aggregating_tasks(Q, "g1") == 2
    assert set(lrange(r, qkey(Q, "pending"))) == {*sched, *retry, *arch, *g1}
    assert all(state(r, tid) == "pending" for tid in (*sched, *retry, *arch, *g1))
    for c in ("scheduled", "retry", "archived", "g:g1"):
        assert not r.exists(qkey(Q, c)), c
    assert smembers(r, qkey(Q, "groups")) == {"g2"}
    assert state(r, g2) == "aggregating"
    # Nothing left: zero, and the generic form.
    assert insp.run_all(Q, "scheduled") == 0
    assert insp.run_all(Q, TaskState.AGGREGATING, group="g2") == 1
    assert not r.exists(qkey(Q, "groups"))
    assert r.llen(qkey(Q, "pending")) == 10


def test_archive_all_archives_every_task_of_a_state(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    pend = [client.enqueue(Task("t")).id for _ in range(3)]
    sched = [client.enqueue(Task("t"), process_in=3600).id for _ in range(2)]
    retry = client.enqueue(Task("t"), process_in=60).id
    move(r, retry, "retry", time.time() + 60)
    g1 = [client.enqueue(Task("t"), group="g1").id for _ in range(2)]
    client.enqueue(Task("t"), group="g2")

    assert insp.archive_all_pending_tasks(Q) == 3
    assert insp.archive_all_scheduled_tasks(Q) == 2
    assert insp.archive_all_retry_tasks(Q) == 1
    assert insp.archive_all_aggregating_tasks(Q, "g1") == 2
    archived = {m for m, _ in zrange(r, qkey(Q, "archived"))}
    assert archived == {*pend, *sched, retry, *g1}
    assert all(state(r, tid) == "archived" for tid in archived)
    for c in ("pending", "scheduled", "retry", "g:g1"):
        assert not r.exists(qkey(Q, c)), c
    assert smembers(r, qkey(Q, "groups")) == {"g2"}
    assert insp.archive_all(Q, "aggregating", group="g2") == 1
    assert insp.archive_all(Q, TaskState.PENDING) == 0
    assert r.zcard(qkey(Q, "archived")) == 9


def test_delete_all_deletes_every_task_of_a_state_and_its_locks(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    pend = [client.enqueue(Task("u", bytes([n])), unique=60).id for n in range(3)]
    sched = [client.enqueue(Task("t"), process_in=3600).id for _ in range(2)]
    retry = client.enqueue(Task("t"), process_in=60).id
    move(r, retry, "retry", time.time() + 60)
    arch = client.enqueue(Task("t")).id
    insp.archive_task(Q, arch)
    done = [client.enqueue(Task("t"), process_in=60).id for _ in range(2)]
    for tid in done:
        move(r, tid, "completed", time.time() + 3600)
    client.enqueue(Task("t"), group="g1")
    client.enqueue(Task("t"), group="g1")
    g2 = client.enqueue(Task("t"), group="g2").id

    assert insp.delete_all_pending_tasks(Q) == 3
    assert not any(r.exists(unique_key(Q, "u", bytes([n]))) for n in range(3))
    assert insp.delete_all_scheduled_tasks(Q) == 2
    assert insp.delete_all_retry_tasks(Q) == 1
    assert insp.delete_all_archived_tasks(Q) == 1
    assert insp.delete_all_completed_tasks(Q) == 2
    assert insp.delete_all_aggregating_tasks(Q, "g1") == 2
    assert queue_keys(r, Q) == {
        qkey(Q, "g:g2"), qkey(Q, "groups"), task_key(g2),
    }, "only the other group is left"  # fmt: skip
    assert not any(r.exists(task_key(tid)) for tid in (*pend, *sched, retry, arch, *done))
    assert insp.delete_all(Q, "aggregating", group="g2") == 1
    assert insp.delete_all(Q, TaskState.COMPLETED) == 0
    assert queue_keys(r, Q) == set()
    assert insp.get_queue_info(Q).size == 0


def test_bulk_calls_on_a_state_they_cannot_take_change_nothing(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    client.enqueue(Task("t"))
    client.enqueue(Task("t"), group="g")
    insp.archive_task(Q, client.enqueue(Task("t")).id)
    make_active(r, client, lease=time.time() + 60)
    before = snapshot(r)
    refused: list[tuple[Callable[..., int], str]] = [
        (insp.run_all, "pending"),
        (insp.run_all, "active"),
        (insp.run_all, "completed"),
        (insp.archive_all, "archived"),
        (insp.archive_all, "active"),
        (insp.archive_all, "completed"),
        (insp.delete_all, "active"),
    ]
    for call, st in refused:
        with pytest.raises(InvalidArgumentError):
            call(Q, st)
    for call in (insp.run_all, insp.archive_all, insp.delete_all):
        with pytest.raises(InvalidArgumentError):
            call(Q, "aggregating")  # without its group
        with pytest.raises(ValueError):
            call(Q, "bogus")
    assert snapshot(r) == before


def test_bulk_calls_work_through_batches_of_a_thousand(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    n = 2500
    made = {i.id for i in client.enqueue_many([Task("t", str(k).encode()) for k in range(n)])}
    assert insp.archive_all_pending_tasks(Q) == n
    assert {m for m, _ in zrange(r, qkey(Q, "archived"))} == made
    assert not r.exists(qkey(Q, "pending"))
    assert insp.run_all_archived_tasks(Q) == n
    assert set(lrange(r, qkey(Q, "pending"))) == made and r.llen(qkey(Q, "pending")) == n
    assert {state(r, tid) for tid in list(made)[:50]} == {"pending"}
    assert insp.delete_all_pending_tasks(Q) == n
    assert queue_keys(r, Q) == set()


# ---- archive limits ------------------------------------------------------------------------


def test_inspector_archive_max_size_keeps_the_newest(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    made = [client.enqueue(Task("t"), task_id=f"t{n}").id for n in range(5)]
    with Inspector(redis_url, archive_max_size=3) as small:
        small.archive_task(Q, made[0])
        small.archive_task(Q, made[1])
        # As if they had been archived a while ago, t0 first.
        now = time.time()
        r.zadd(qkey(Q, "archived"), {made[0]: now - 100, made[1]: now - 50})
        for tid in made[2:]:
            small.archive_task(Q, tid)
        assert {m for m, _ in zrange(r, qkey(Q, "archived"))} == set(made[2:])
        assert not r.exists(task_key(made[0])) and not r.exists(task_key(made[1]))
        assert all(state(r, tid) == "archived" for tid in made[2:])
        assert small.get_queue_info(Q).archived == 3


def test_inspector_archive_all_trims_to_archive_max_size(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    client.enqueue_many([Task("t") for _ in range(5)])
    with Inspector(redis_url, archive_max_size=3) as small:
        assert small.archive_all_pending_tasks(Q) == 5
    assert r.zcard(qkey(Q, "archived")) == 3
    assert len([k for k in keys(r) if k.startswith(task_key(""))]) == 3


def test_the_task_archived_last_is_kept_by_the_size_trim(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    for tid in ("x", "y", "z", "a"):
        client.enqueue(Task("t"), task_id=tid)
    with Inspector(redis_url, archive_max_size=3) as small:
        for tid in ("x", "y", "z"):
            small.archive_task(Q, tid)
        # The others scored as late as (or later than) the task about to be archived: rank
        # alone would trim the new one; the trim keeps what it just archived.
        r.zadd(qkey(Q, "archived"), dict.fromkeys(("x", "y", "z"), int(time.time()) + 5))
        small.archive_task(Q, "a")
    archived = [m for m, _ in zrange(r, qkey(Q, "archived"))]
    assert "a" in archived and len(archived) == 3
    assert sum(r.exists(task_key(t)) for t in ("x", "y", "z")) == 2


def test_inspector_archive_max_age_deletes_old_archived_tasks(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    old, new = client.enqueue(Task("t")).id, client.enqueue(Task("t")).id
    with Inspector(redis_url, archive_max_age=timedelta(minutes=1)) as i:
        i.archive_task(Q, old)
        r.zadd(qkey(Q, "archived"), {old: time.time() - 120})
        i.archive_task(Q, new)
    assert [m for m, _ in zrange(r, qkey(Q, "archived"))] == [new]
    assert not r.exists(task_key(old))


def test_server_archive_max_size_keeps_the_archive_at_that_size(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    def fail(task: Task) -> None:
        raise ValueError("no")

    made = [client.enqueue(Task("f", bytes([n])), max_retry=0).id for n in range(5)]
    make_server(archive_max_size=2, concurrency=1).start(mux_of({"f": fail}))
    wait_until(lambda: counter(r, qkey(Q, "failed")) == 5 and empty_active(r))
    # The trim follows each archive, in a call of its own.
    wait_until(lambda: r.zcard(qkey(Q, "archived")) == 2)
    archived = [m for m, _ in zrange(r, qkey(Q, "archived"))]
    assert len(archived) == 2 and set(archived) <= set(made)
    assert [i.last_error for i in insp.list_archived_tasks(Q)] == ["ValueError: no"] * 2
    assert insp.get_queue_info(Q).archived == 2


def test_the_server_archive_trim_leaves_no_stray_task_hash(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    def fail(task: Task) -> None:
        raise ValueError("no")

    later = [client.enqueue(Task("t"), task_id=tid).id for tid in ("y", "z")]
    for tid in later:
        move(r, tid, "archived", time.time() + 100)  # archived by a server whose clock is ahead
    client.enqueue(Task("f"), max_retry=0, task_id="a")
    make_server(archive_max_size=2).start(mux_of({"f": fail}))
    wait_until(lambda: counter(r, qkey(Q, "failed")) == 1 and empty_active(r))
    wait_until(lambda: r.zcard(qkey(Q, "archived")) == 2)  # the trim's own call
    archived = {m for m, _ in zrange(r, qkey(Q, "archived"))}
    assert len(archived) == 2
    hashes = {k.removeprefix(task_key("")) for k in keys(r) if k.startswith(task_key(""))}
    assert hashes == archived, "every archived task hash is in the archive"


def test_invalid_archive_limits_are_refused(redis_url: str) -> None:
    bad: list[dict[str, Any]] = [
        {"archive_max_size": 0},
        {"archive_max_size": -1},
        {"archive_max_age": 0},
        {"archive_max_age": -5},
    ]
    for kw in bad:
        with pytest.raises(InvalidArgumentError):
            Inspector(redis_url, **kw)
        with pytest.raises(InvalidArgumentError):
            Server(redis_url, **kw)


# ---- update_task_payload -------------------------------------------------------------------


def test_update_task_payload_of_a_scheduled_task(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    tid = client.enqueue(
        Task("t", b"old", headers={"h": "v"}), process_in=3600, max_retry=4, timeout=90
    ).id
    score = zscore(r, qkey(Q, "scheduled"), tid)
    before = stored(r, tid)
    info = insp.update_task_payload(Q, tid, b"new")
    assert (info.id, info.payload, info.state) == (tid, b"new", TaskState.SCHEDULED)
    assert insp.get_task_info(Q, tid).payload == b"new"
    after = stored(r, tid)
    assert after["payload"] == b"new"
    assert {k: v for k, v in after.items() if k != "payload"} == {
        k: v for k, v in before.items() if k != "payload"
    }
    assert zscore(r, qkey(Q, "scheduled"), tid) == score
    assert state(r, tid) == "scheduled"
    assert insp.update_task_payload(Q, tid, b"").payload == b""
    assert wire.task(cast(bytes, r.hget(task_key(tid), "msg"))).get("payload", b"") == b""


def test_update_task_payload_refuses_other_states_and_missing_tasks(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    pending = client.enqueue(Task("t", b"old")).id
    archived = client.enqueue(Task("t", b"old")).id
    insp.archive_task(Q, archived)
    active = make_active(r, client, lease=time.time() + 60)
    before = snapshot(r)
    for tid in (pending, archived, active):
        with pytest.raises(InvalidArgumentError):
            insp.update_task_payload(Q, tid, b"new")
    with pytest.raises(TaskNotFoundError):
        insp.update_task_payload(Q, "no-such-task", b"new")
    assert snapshot(r) == before


# ---- cancel_processing ---------------------------------------------------------------------


def test_cancel_processing_without_servers_reaches_none(client: Client, insp: Inspector) -> None:
    tid = client.enqueue(Task("t")).id
    assert insp.cancel_processing(tid) == 0


def test_cancel_processing_cancels_a_running_handler(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def wait(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    retried = client.enqueue(Task("w"), max_retry=3).id
    make_server().start(mux_of({"w": wait}))
    assert started.wait(10)
    assert insp.cancel_processing(retried) >= 1
    wait_until(lambda: state(r, retried) == "retry")
    assert cancelled.is_set()
    info = insp.get_task_info(Q, retried)
    assert info.last_error is not None and "context canceled" in info.last_error
    assert info.retried == 1


def test_cancel_processing_of_a_sync_handler_with_no_retry_left_archives_it(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    started = threading.Event()

    def wait(task: Task) -> None:
        started.set()
        task.wait_cancelled(30)

    tid = client.enqueue(Task("w"), max_retry=0).id
    make_server().start(mux_of({"w": wait}))
    assert started.wait(10)
    assert insp.cancel_processing(tid) >= 1
    wait_until(lambda: state(r, tid) == "archived")
    info = insp.get_task_info(Q, tid)
    assert info.last_error is not None and "context canceled" in info.last_error
    assert ids(insp.list_archived_tasks(Q)) == [tid]


# ---- servers -------------------------------------------------------------------------------


def test_servers_show_live_servers_and_what_they_run(
    client: Client, r: redis.Redis, make_server: MakeServer, insp: Inspector
) -> None:
    assert insp.servers() == []
    h = Holder()
    s = make_server(concurrency=3, queues={Q: 2, "low": 1})
    started_at = time.time()
    s.start(mux_of({"hold": h}))
    try:
        tid = client.enqueue(Task("hold", b"pp"), timeout=120).id
        assert h.started.wait(10)
        (info,) = wait_until(lambda: [x for x in insp.servers() if x.active_workers])
        assert (info.id, info.host, info.pid, info.concurrency) == (
            s.server_id, socket.gethostname(), os.getpid(), 3,
        )  # fmt: skip
        assert (info.queues, info.status, info.strict_priority) == (
            {Q: 2, "low": 1},
            "active",
            False,
        )
        assert near(info.started, started_at)
        (w,) = info.active_workers
        assert (w.task_id, w.task_type, w.task_payload, w.queue) == (tid, "hold", b"pp", Q)
        assert w.started is not None and near(w.started, time.time(), 10)
        assert w.deadline is not None
        assert abs((w.deadline - w.started).total_seconds() - 120) <= 2
        (active,) = insp.list_active_tasks(Q)
        assert (active.id, active.is_orphaned) == (tid, False)
    finally:
        h.release.set()
    wait_until(lambda: not r.exists(task_key(tid)))
    wait_until(lambda: [x.active_workers for x in insp.servers()] == [[]])
    s.shutdown()
    assert insp.servers() == []


# ---- schedulers ----------------------------------------------------------------------------


def test_scheduler_entries_and_their_enqueue_events(
    r: redis.Redis, redis_url: str, insp: Inspector
) -> None:
    assert insp.scheduler_entries() == []
    assert insp.list_scheduler_enqueue_events("none") == []
    sched = Scheduler(redis_url, heartbeat_interval=0.2)
    try:
        eid = sched.register("* * * * * *", Task("tick", b"p"), queue="cron", max_retry=2)
        sched.start()

        def fired() -> Any:
            es = insp.scheduler_entries()
            return es if es and es[0].prev_enqueue_at is not None else None

        (e,) = wait_until(fired)
        assert (e.id, e.spec, e.task_type, e.task_payload, e.queue) == (
            eid, "* * * * * *", "tick", b"p", "cron",
        )  # fmt: skip
        assert 'Queue("cron")' in e.enqueue_options and "MaxRetry(2)" in e.enqueue_options
        prev, nxt = e.prev_enqueue_at, e.next_enqueue_at
        assert prev is not None and nxt is not None
        assert timedelta(0) < nxt - prev <= timedelta(seconds=2)
        assert near(nxt, time.time(), 3)
        assert nxt == CronSchedule("* * * * * *").next_after(nxt - timedelta(seconds=1))

        events = wait_until(
            lambda: ev if len(ev := insp.list_scheduler_enqueue_events(eid)) >= 2 else None
        )
    finally:
        sched.shutdown()
    stamps = [ev.enqueued_at for ev in events]
    assert stamps == sorted(stamps, reverse=True), "newest first"
    assert all(near(s, time.time(), 30) for s in stamps)
    for ev in events:
        info = insp.get_task_info("cron", ev.task_id)
        assert (info.type, info.payload, info.max_retry) == ("tick", b"p", 2)
    history = cast(list[bytes], r.zrange(f"asynq:scheduler_history:{eid}", 0, -1))
    written = {wire.enqueue_event(h)["task_id"] for h in history}
    assert {ev.task_id for ev in events} <= written
    all_events = insp.list_scheduler_enqueue_events(eid, page_size=1000)
    assert [ev.task_id for ev in insp.list_scheduler_enqueue_events(eid, page=2, page_size=1)] == [
        all_events[1].task_id
    ]
    assert insp.scheduler_entries() == [], "a stopped scheduler's entries are withdrawn"


# ---- connection and namespace --------------------------------------------------------------


def test_ping_close_and_namespace(client: Client, redis_url: str, insp: Inspector) -> None:
    client.enqueue(Task("t"))
    insp.ping()
    insp.close()
    assert insp.queues() == [Q], "usable after close"
    with Inspector(redis_url, namespace="other") as other:
        assert other.queues() == []
        with pytest.raises(QueueNotFoundError):
            other.get_queue_info(Q)


def test_ping_without_redis_raises_a_connection_error() -> None:
    with Inspector(CLOSED_PORT_URL) as i, pytest.raises(BrokerConnectionError):
        i.ping()


def test_an_inspector_without_limits_never_trims_the_archive(
    client: Client, r: redis.Redis, redis_url: str, insp: Inspector
) -> None:
    """A server told to keep more than the defaults keeps it: a tool trims nothing by default."""
    ids = [i.id for i in client.enqueue_many([Task("t") for _ in range(13)])]
    now = time.time()
    r.zadd(qkey(Q, "archived"), {i: now - 100 * 86400 for i in ids[:12]})  # past asynq's 90 days
    for i in ids[:12]:
        r.lrem(qkey(Q, "pending"), 0, i)
        r.hset(task_key(i), "state", "archived")
    insp.archive_task(Q, ids[12])
    assert r.zcard(qkey(Q, "archived")) == 13
    assert all(r.exists(task_key(i)) for i in ids)
    with Inspector(redis_url, archive_max_size=5) as trimming:
        trimming.run_task(Q, ids[12])
        trimming.archive_task(Q, ids[12])
    # One limit given, the other is asynq's: the 90-day-old ones go, the new one stays.
    assert [m for m, _ in zrange(r, qkey(Q, "archived"))] == [ids[12]]


def test_delete_task_removes_a_hash_that_no_container_holds(
    client: Client, r: redis.Redis, insp: Inspector
) -> None:
    info = client.enqueue(Task("t", b"p"), unique=3600)
    # What asynq's Inspector leaves when it trims an archive: the hash, in no container.
    r.lrem(qkey(Q, "pending"), 0, info.id)
    r.hset(task_key(info.id), "state", "archived")
    lock = unique_key(Q, "t", b"p")
    assert r.get(lock) == info.id.encode()
    with pytest.raises(BrokerError, match="not where that state keeps it"):
        insp.run_task(Q, info.id)
    insp.delete_task(Q, info.id)
    assert not r.exists(task_key(info.id)) and not r.exists(lock)
    with pytest.raises(TaskNotFoundError):
        insp.delete_task(Q, info.id)
