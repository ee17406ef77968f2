"""Client behaviour against real Redis and Valkey: for every enqueue option, exactly what lands in
Redis (asynq wire spec §2, §3, §4, §6.1, §10), observed with redis-py and the independent protobuf
reader in ``wire.py``, never with ferroq's own decoder."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

import wire
from client_helpers import (
    UUID4,
    keys,
    lrange,
    qkey,
    raw_msg,
    smembers,
    snapshot,
    stored,
    task_hash,
    task_key,
    ttl,
    unique_key,
    zrange,
)
from ferroq import (
    Client,
    DuplicateTaskError,
    InvalidArgumentError,
    Task,
    TaskIdConflictError,
    TaskState,
)
from ferroq._options import Duration


def test_default_enqueue_writes_asynq_layout(client: Client, r: redis.Redis) -> None:
    before = time.time_ns()
    info = client.enqueue(Task("email:send", b'{"to": 42}'))
    after = time.time_ns()

    assert UUID4.match(info.id), info.id
    assert str(uuid.UUID(info.id)) == info.id
    assert uuid.UUID(info.id).version == 4

    assert smembers(r, "asynq:queues") == {"default"}
    assert lrange(r, qkey("default", "pending")) == [info.id]
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state", "pending_since"}
    assert h["state"] == b"pending"
    assert before <= int(h["pending_since"]) <= after
    assert keys(r) == {"asynq:queues", qkey("default", "pending"), task_key(info.id)}

    m = wire.task(h["msg"])
    assert m == {
        "type": "email:send",
        "payload": b'{"to": 42}',
        "id": info.id,
        "queue": "default",
        "retry": 25,
        "retried": 0,
        "error_msg": "",
        "timeout": 1800,
        "deadline": 0,
        "unique_key": "",
        "last_failed_at": 0,
        "retention": 0,
        "completed_at": 0,
        "group_key": "",
        "headers": {},
    }
    # no headers field on the wire when there are none
    assert [num for num, _wt, _v in wire.fields(h["msg"])].count(15) == 0

    assert info.queue == "default"
    assert info.type == "email:send"
    assert info.payload == b'{"to": 42}'
    assert info.headers == {}
    assert info.state is TaskState.PENDING
    assert info.max_retry == 25
    assert info.retried == 0
    assert info.last_error is None
    assert info.timeout == timedelta(seconds=1800)
    assert info.deadline is None
    assert info.retention == timedelta(0)
    assert info.group is None
    assert info.next_process_at is not None
    assert before // 10**9 <= info.next_process_at.timestamp() <= after / 10**9


def test_pending_list_is_fifo_from_the_tail(client: Client, r: redis.Redis) -> None:
    ids = [client.enqueue(Task("t", str(i).encode())).id for i in range(3)]
    # LPUSH at the head; workers RPOPLPUSH from the tail, so the tail is the oldest.
    assert lrange(r, qkey("default", "pending")) == ids[::-1]
    assert len(set(ids)) == 3


def test_each_enqueue_gets_a_fresh_id(client: Client, r: redis.Redis) -> None:
    a = client.enqueue(Task("t", b"same"))
    b = client.enqueue(Task("t", b"same"))
    assert a.id != b.id
    assert stored(r, a.id)["payload"] == stored(r, b.id)["payload"] == b"same"


@pytest.mark.parametrize("queue", ["critical", "low priority", "Critical", "ünï:cödé", "a{b}c"])
def test_queue_option(client: Client, r: redis.Redis, queue: str) -> None:
    info = client.enqueue(Task("t", b"p"), queue=queue)
    assert info.queue == queue
    assert smembers(r, "asynq:queues") == {queue}
    assert lrange(r, qkey(queue, "pending")) == [info.id]
    assert stored(r, info.id, queue)["queue"] == queue
    assert task_hash(r, info.id, queue)["state"] == b"pending"
    assert not r.exists(qkey("default", "pending"))


def test_queues_set_collects_every_queue(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t"), queue="a")
    client.enqueue(Task("t"), queue="b")
    client.enqueue(Task("t"))
    assert smembers(r, "asynq:queues") == {"a", "b", "default"}


def test_namespace_prefixes_every_key(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url, namespace="other") as c:
        info = c.enqueue(Task("t", b"p"))
    assert keys(r) == {"other:queues", "other:{default}:pending", f"other:{{default}}:t:{info.id}"}
    raw = r.hget(f"other:{{default}}:t:{info.id}", "msg")
    assert isinstance(raw, bytes)
    assert wire.task(raw)["id"] == info.id


@pytest.mark.parametrize(
    ("given", "expected"), [(0, 0), (1, 1), (3, 3), (1000, 1000), (2**31 - 1, 2**31 - 1)]
)
def test_max_retry_option(client: Client, r: redis.Redis, given: int, expected: int) -> None:
    info = client.enqueue(Task("t"), max_retry=given)
    assert info.max_retry == expected
    m = stored(r, info.id)
    assert m["retry"] == expected
    assert m["retried"] == 0


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (10, 10),
        (2.9, 2),  # whole seconds, truncated as Go's int64(d.Seconds())
        (3600.0, 3600),
        (timedelta(minutes=5), 300),
        (timedelta(seconds=90, milliseconds=500), 90),
        (timedelta(hours=2), 7200),
    ],
)
def test_timeout_option_without_deadline(
    client: Client, r: redis.Redis, timeout: Duration, expected: int
) -> None:
    info = client.enqueue(Task("t"), timeout=timeout)
    m = stored(r, info.id)
    assert (m["timeout"], m["deadline"]) == (expected, 0)
    assert info.timeout == timedelta(seconds=expected)
    assert info.deadline is None


@pytest.mark.parametrize("zero", [0, 0.0, timedelta(0)], ids=["int", "float", "timedelta"])
def test_zero_timeout_without_deadline_gets_asynq_default(
    client: Client, r: redis.Redis, zero: Duration
) -> None:
    # asynq treats Timeout(0) as "not given" and writes the 30 min default (spec §8); a message with
    # neither timeout nor deadline is an internal error to a Go server (spec §9, §13 item 2).
    info = client.enqueue(Task("t"), timeout=zero)
    m = stored(r, info.id)
    assert (m["timeout"], m["deadline"]) == (1800, 0)


def test_deadline_only_means_no_timeout(client: Client, r: redis.Redis) -> None:
    deadline = datetime(2100, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone.utc)
    info = client.enqueue(Task("t"), deadline=deadline)
    m = stored(r, info.id)
    assert m["deadline"] == 4102542245  # Unix seconds, fraction floored
    assert m["deadline"] == math.floor(deadline.timestamp())
    assert m["timeout"] == 0
    assert info.timeout is None
    assert info.deadline == deadline.replace(microsecond=0)


def test_deadline_in_another_zone_is_converted_to_unix_seconds(
    client: Client, r: redis.Redis
) -> None:
    tz = timezone(timedelta(hours=-7, minutes=-30))
    deadline = datetime(2030, 6, 1, 12, 0, 0, tzinfo=tz)
    info = client.enqueue(Task("t"), deadline=deadline)
    expected = int(datetime(2030, 6, 1, 19, 30, 0, tzinfo=timezone.utc).timestamp())
    assert stored(r, info.id)["deadline"] == expected
    assert info.deadline == datetime.fromtimestamp(expected, timezone.utc)


def test_timeout_and_deadline_both_written(client: Client, r: redis.Redis) -> None:
    deadline = datetime(2040, 1, 1, tzinfo=timezone.utc)
    info = client.enqueue(Task("t"), timeout=timedelta(seconds=45), deadline=deadline)
    m = stored(r, info.id)
    assert (m["timeout"], m["deadline"]) == (45, int(deadline.timestamp()))
    assert info.timeout == timedelta(seconds=45)
    assert info.deadline == deadline


@pytest.mark.parametrize(
    ("unique", "expected_ttl"),
    [(60, 60), (1, 1), (90.7, 90), (timedelta(hours=1), 3600), (timedelta(days=2), 172800)],
)
def test_unique_option_takes_the_lock(
    client: Client, r: redis.Redis, unique: Duration, expected_ttl: int
) -> None:
    payload = b'\x00{"user": 7}\xff'
    info = client.enqueue(Task("report:build", payload), unique=unique)
    lock = "asynq:{default}:unique:report:build:" + hashlib.md5(payload).hexdigest()
    assert lock == unique_key("default", "report:build", payload)

    assert r.get(lock) == info.id.encode()
    assert expected_ttl - 2 <= ttl(r, lock) <= expected_ttl
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state", "pending_since", "unique_key"}
    assert h["unique_key"] == lock.encode()
    assert h["state"] == b"pending"
    assert stored(r, info.id)["unique_key"] == lock
    assert lrange(r, qkey("default", "pending")) == [info.id]


def test_unique_without_payload_uses_trailing_colon_key(client: Client, r: redis.Redis) -> None:
    # Go's NewTask(t, nil): no checksum, a trailing colon.
    info = client.enqueue(Task("cleanup"), unique=30)
    lock = "asynq:{default}:unique:cleanup:"
    assert r.get(lock) == info.id.encode()
    assert task_hash(r, info.id)["unique_key"] == lock.encode()
    assert stored(r, info.id)["unique_key"] == lock
    assert not r.exists("asynq:{default}:unique:cleanup:" + hashlib.md5(b"").hexdigest())


def test_unique_with_empty_payload_hashes_it(client: Client, r: redis.Redis) -> None:
    # Go's NewTask(t, []byte{}): the md5 of no bytes. Not a duplicate of the nil-payload task.
    nil = client.enqueue(Task("cleanup"), unique=30)
    empty = client.enqueue(Task("cleanup", b""), unique=30)
    lock = "asynq:{default}:unique:cleanup:d41d8cd98f00b204e9800998ecf8427e"
    assert r.get(lock) == empty.id.encode()
    assert r.get("asynq:{default}:unique:cleanup:") == nil.id.encode()
    assert stored(r, empty.id)["payload"] == b""


@pytest.mark.parametrize(
    "second",
    [
        pytest.param({}, id="same-options"),
        pytest.param({"max_retry": 1, "timeout": 5}, id="other-options"),
        pytest.param({"unique": 3600}, id="other-ttl"),
        pytest.param({"process_in": 600}, id="scheduled"),
        pytest.param({"group": "g"}, id="grouped"),
    ],
)
def test_duplicate_unique_task_is_refused_and_writes_nothing(
    client: Client, r: redis.Redis, second: dict[str, Any]
) -> None:
    first = client.enqueue(Task("t", b"p"), unique=60)
    before = snapshot(r)
    opts: dict[str, Any] = {"unique": 60, **second}
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("t", b"p"), **opts)
    assert snapshot(r) == before
    assert r.get(unique_key("default", "t", b"p")) == first.id.encode()
    assert lrange(r, qkey("default", "pending")) == [first.id]


@pytest.mark.parametrize(
    ("task", "opts"),
    [
        pytest.param(Task("t", b"other"), {}, id="other-payload"),
        pytest.param(Task("u", b"p"), {}, id="other-type"),
        pytest.param(Task("t", b"p"), {"queue": "elsewhere"}, id="other-queue"),
    ],
)
def test_unique_is_per_queue_type_and_payload(
    client: Client, r: redis.Redis, task: Task, opts: dict[str, Any]
) -> None:
    first = client.enqueue(Task("t", b"p"), unique=60)
    second = client.enqueue(task, unique=60, **opts)
    q = opts.get("queue", "default")
    assert r.get(unique_key("default", "t", b"p")) == first.id.encode()
    assert r.get(unique_key(q, task.type, task.payload)) == second.id.encode()
    assert lrange(r, qkey(q, "pending"))[0] == second.id


def test_non_unique_enqueue_ignores_the_lock(client: Client, r: redis.Redis) -> None:
    first = client.enqueue(Task("t", b"p"), unique=60)
    second = client.enqueue(Task("t", b"p"))
    assert lrange(r, qkey("default", "pending")) == [second.id, first.id]
    assert "unique_key" not in task_hash(r, second.id)
    assert stored(r, second.id)["unique_key"] == ""


@pytest.mark.parametrize("unique", [0, 0.5, 0.999, timedelta(milliseconds=999)])
def test_unique_under_one_second_is_refused(
    client: Client, r: redis.Redis, unique: Duration
) -> None:
    with pytest.raises(InvalidArgumentError):
        client.enqueue(Task("t", b"p"), unique=unique)
    assert keys(r) == set()


def test_unique_scheduled_ttl_is_extended_by_the_delay(client: Client, r: redis.Redis) -> None:
    info = client.enqueue(Task("t", b"p"), unique=60, process_in=120)
    lock = unique_key("default", "t", b"p")
    assert r.get(lock) == info.id.encode()
    # asynq: int((process_at + ttl - now).Seconds()) = 180 minus what the call took
    assert 177 <= ttl(r, lock) <= 181
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state", "unique_key"}
    assert h["state"] == b"scheduled"
    assert h["unique_key"] == lock.encode()
    assert [m for m, _s in zrange(r, qkey("default", "scheduled"))] == [info.id]


def test_unique_grouped_task_keeps_lock_out_of_the_hash(client: Client, r: redis.Redis) -> None:
    # asynq's addToGroupUnique takes the lock but does not store unique_key in the hash (§6.1)
    info = client.enqueue(Task("t", b"p"), unique=60, group="g")
    lock = unique_key("default", "t", b"p")
    assert r.get(lock) == info.id.encode()
    assert 58 <= ttl(r, lock) <= 60
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state", "group"}
    assert stored(r, info.id)["unique_key"] == lock


@pytest.mark.parametrize(
    "process_at",
    [
        datetime(2100, 1, 1, tzinfo=timezone.utc),
        datetime(2100, 1, 1, 0, 0, 0, 999_999, tzinfo=timezone.utc),
        datetime(2099, 12, 31, 19, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_process_at_future_schedules(client: Client, r: redis.Redis, process_at: datetime) -> None:
    info = client.enqueue(Task("t", b"p"), process_at=process_at)
    # 2100-01-01T00:00:00Z, rounded up: a task never runs before its time.
    expected = math.ceil(process_at.timestamp())
    assert expected - 4102444800 in (0, 1)
    assert zrange(r, qkey("default", "scheduled")) == [(info.id, float(expected))]
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state"}
    assert h["state"] == b"scheduled"
    assert not r.exists(qkey("default", "pending"))
    assert smembers(r, "asynq:queues") == {"default"}
    m = stored(r, info.id)
    assert (m["id"], m["queue"], m["timeout"], m["retry"]) == (info.id, "default", 1800, 25)
    assert info.state is TaskState.SCHEDULED
    assert info.next_process_at is not None
    assert math.floor(info.next_process_at.timestamp()) == expected


@pytest.mark.parametrize("delay", [30, 90.5, timedelta(hours=1), timedelta(days=3)])
def test_process_in_future_schedules(client: Client, r: redis.Redis, delay: Duration) -> None:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    before = time.time()
    info = client.enqueue(Task("t"), process_in=delay)
    after = time.time()
    [(member, score)] = zrange(r, qkey("default", "scheduled"))
    assert member == info.id
    assert score == int(score)
    # Rounded up to the second: a task never runs before its time.
    assert math.ceil(before + seconds) <= score <= math.ceil(after + seconds)
    h = task_hash(r, info.id)
    assert h["state"] == b"scheduled"
    assert "pending_since" not in h
    assert not r.exists(qkey("default", "pending"))
    assert info.state is TaskState.SCHEDULED
    assert info.next_process_at is not None
    assert math.floor(info.next_process_at.timestamp()) == score


def test_process_at_later_in_the_current_second_schedules(client: Client, r: redis.Redis) -> None:
    # asynq compares ProcessAt with now at full precision (`processAt.After(now)`, spec §5): an
    # instant later in the current second is in the future, so the task is scheduled, with its
    # score rounded up to the next second so that the forwarder never moves it early.
    while time.time() % 1 > 0.5:  # align to the start of a second so process_at stays ahead
        time.sleep(0.05)
    now = time.time()
    process_at = datetime.fromtimestamp(math.floor(now) + 0.99, timezone.utc)
    info = client.enqueue(Task("t"), process_at=process_at)
    assert time.time() < process_at.timestamp()  # it was still in the future after the call
    assert zrange(r, qkey("default", "scheduled")) == [(info.id, float(math.floor(now) + 1))]
    assert task_hash(r, info.id)["state"] == b"scheduled"
    assert not r.exists(qkey("default", "pending"))
    assert info.state is TaskState.SCHEDULED


@pytest.mark.parametrize(
    "opts",
    [
        pytest.param({"process_at": datetime(2000, 1, 1, tzinfo=timezone.utc)}, id="at-past"),
        pytest.param({"process_at": datetime.now(timezone.utc) - timedelta(seconds=5)}, id="at-5s"),
        pytest.param({"process_in": 0}, id="in-0"),
        pytest.param({"process_in": timedelta(0)}, id="in-timedelta-0"),
    ],
)
def test_process_at_not_in_future_is_pending(
    client: Client, r: redis.Redis, opts: dict[str, Any]
) -> None:
    before = time.time_ns()
    info = client.enqueue(Task("t"), **opts)
    after = time.time_ns()
    assert lrange(r, qkey("default", "pending")) == [info.id]
    h = task_hash(r, info.id)
    assert h["state"] == b"pending"
    assert before <= int(h["pending_since"]) <= after
    assert not r.exists(qkey("default", "scheduled"))
    assert info.state is TaskState.PENDING
    assert info.next_process_at is not None
    assert before // 10**9 <= info.next_process_at.timestamp() <= after / 10**9


def test_process_at_and_process_in_together_are_refused(client: Client, r: redis.Redis) -> None:
    with pytest.raises(InvalidArgumentError):
        client.enqueue(
            Task("t"), process_at=datetime(2100, 1, 1, tzinfo=timezone.utc), process_in=10
        )
    assert keys(r) == set()


@pytest.mark.parametrize("task_id", ["my-id", "order:42", "ÄÖÜ with spaces", "x" * 200])
def test_task_id_option(client: Client, r: redis.Redis, task_id: str) -> None:
    info = client.enqueue(Task("t", b"p"), task_id=task_id)
    assert info.id == task_id
    assert lrange(r, qkey("default", "pending")) == [task_id]
    assert task_hash(r, task_id)["state"] == b"pending"
    assert stored(r, task_id)["id"] == task_id


@pytest.mark.parametrize(
    "first_opts",
    [
        pytest.param({}, id="pending"),
        pytest.param({"process_in": 600}, id="scheduled"),
        pytest.param({"group": "g"}, id="aggregating"),
    ],
)
@pytest.mark.parametrize(
    "second_opts",
    [
        pytest.param({}, id="to-pending"),
        pytest.param({"process_in": 60}, id="to-scheduled"),
        pytest.param({"group": "h"}, id="to-aggregating"),
    ],
)
def test_task_id_reuse_conflicts_in_any_state(
    client: Client, r: redis.Redis, first_opts: dict[str, Any], second_opts: dict[str, Any]
) -> None:
    client.enqueue(Task("t", b"original"), task_id="fixed", **first_opts)
    before = snapshot(r)
    with pytest.raises(TaskIdConflictError):
        client.enqueue(Task("other", b"changed"), task_id="fixed", max_retry=1, **second_opts)
    assert snapshot(r) == before
    m = stored(r, "fixed")
    assert (m["type"], m["payload"], m["retry"]) == ("t", b"original", 25)


def test_task_id_reuse_in_another_queue_is_allowed(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"a"), task_id="fixed")
    client.enqueue(Task("t", b"b"), task_id="fixed", queue="other")
    assert stored(r, "fixed")["payload"] == b"a"
    assert stored(r, "fixed", "other")["payload"] == b"b"


def test_task_id_conflict_with_unique_keeps_the_lock(client: Client, r: redis.Redis) -> None:
    # asynq's enqueueUnique takes the lock before the ID check and leaves it held (§6.1)
    client.enqueue(Task("t", b"original"), task_id="fixed")
    with pytest.raises(TaskIdConflictError):
        client.enqueue(Task("t", b"new"), task_id="fixed", unique=60)
    assert r.get(unique_key("default", "t", b"new")) == b"fixed"
    assert stored(r, "fixed")["payload"] == b"original"
    assert "unique_key" not in task_hash(r, "fixed")


@pytest.mark.parametrize("task_id", ["", " ", "\t\n"])
def test_blank_task_id_is_refused(client: Client, r: redis.Redis, task_id: str) -> None:
    with pytest.raises(InvalidArgumentError):
        client.enqueue(Task("t"), task_id=task_id)
    assert keys(r) == set()


@pytest.mark.parametrize(
    ("retention", "expected"),
    [(0, 0), (3600, 3600), (1.9, 1), (timedelta(days=1), 86400), (timedelta(weeks=1), 604800)],
)
def test_retention_option(
    client: Client, r: redis.Redis, retention: Duration, expected: int
) -> None:
    info = client.enqueue(Task("t"), retention=retention)
    m = stored(r, info.id)
    assert m["retention"] == expected
    assert m["completed_at"] == 0
    assert info.retention == timedelta(seconds=expected)
    assert task_hash(r, info.id)["state"] == b"pending"


@pytest.mark.parametrize(("queue", "group"), [("default", "batch"), ("mail", "user:42")])
def test_group_option_aggregates(client: Client, r: redis.Redis, queue: str, group: str) -> None:
    before = time.time()
    info = client.enqueue(Task("t", b"p"), queue=queue, group=group)
    after = time.time()
    [(member, score)] = zrange(r, qkey(queue, f"g:{group}"))
    assert member == info.id
    assert math.floor(before) <= score <= math.floor(after)
    assert smembers(r, qkey(queue, "groups")) == {group}
    h = task_hash(r, info.id, queue)
    assert set(h) == {"msg", "state", "group"}
    assert h["state"] == b"aggregating"
    assert h["group"] == group.encode()
    assert stored(r, info.id, queue)["group_key"] == group
    assert smembers(r, "asynq:queues") == {queue}
    assert not r.exists(qkey(queue, "pending"))
    assert not r.exists(qkey(queue, "scheduled"))
    assert info.state is TaskState.AGGREGATING
    assert info.group == group
    assert info.next_process_at is None


def test_group_collects_tasks_and_group_names(client: Client, r: redis.Redis) -> None:
    a = client.enqueue(Task("t", b"1"), group="g1")
    b = client.enqueue(Task("t", b"2"), group="g1")
    c = client.enqueue(Task("t", b"3"), group="g2")
    assert {m for m, _s in zrange(r, qkey("default", "g:g1"))} == {a.id, b.id}
    assert [m for m, _s in zrange(r, qkey("default", "g:g2"))] == [c.id]
    assert smembers(r, qkey("default", "groups")) == {"g1", "g2"}


def test_group_with_future_process_at_is_scheduled(client: Client, r: redis.Redis) -> None:
    # asynq: ProcessAt in the future wins; schedule writes no `group` hash field (§6.1, §14)
    info = client.enqueue(Task("t"), group="g", process_in=300)
    assert info.state is TaskState.SCHEDULED
    assert [m for m, _s in zrange(r, qkey("default", "scheduled"))] == [info.id]
    h = task_hash(r, info.id)
    assert set(h) == {"msg", "state"}
    assert h["state"] == b"scheduled"
    assert stored(r, info.id)["group_key"] == "g"
    assert not r.exists(qkey("default", "g:g"))
    assert not r.exists(qkey("default", "groups"))


@pytest.mark.parametrize("group", ["", "  "])
def test_blank_group_is_refused(client: Client, r: redis.Redis, group: str) -> None:
    with pytest.raises(InvalidArgumentError):
        client.enqueue(Task("t"), group=group)
    assert keys(r) == set()


@pytest.mark.parametrize(
    ("task_headers", "enqueue_headers", "expected"),
    [
        ({"a": "1"}, None, {"a": "1"}),
        ({}, {"trace": "abc"}, {"trace": "abc"}),
        ({"a": "1", "b": "2"}, {"b": "x", "c": "3"}, {"a": "1", "b": "x", "c": "3"}),
        ({"empty": ""}, {"ü": "ß"}, {"empty": "", "ü": "ß"}),
    ],
)
def test_headers_option(
    client: Client,
    r: redis.Redis,
    task_headers: dict[str, str],
    enqueue_headers: dict[str, str] | None,
    expected: dict[str, str],
) -> None:
    task = Task("t", b"p", headers=task_headers)
    info = client.enqueue(task, headers=enqueue_headers)
    raw = raw_msg(r, info.id)
    assert wire.task(raw)["headers"] == expected
    # one map entry (field 15, length-delimited) per header
    assert [(num, wt) for num, wt, _v in wire.fields(raw) if num == 15] == [(15, 2)] * len(expected)
    assert info.headers == expected
    assert task.headers == task_headers  # the Task itself is not changed
