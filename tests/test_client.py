"""Client behaviour against real Redis and Valkey: for every enqueue option, exactly what lands in
Redis (asynq wire spec §2, §3, §4, §6.1, §10), observed with redis-py and the independent protobuf
reader in ``wire.py``, never with ferroq's own decoder."""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
import redis

import wire
from ferroq import (
    BatchEnqueueError,
    BrokerConnectionError,
    Client,
    DuplicateTaskError,
    InvalidArgumentError,
    Task,
    TaskIdConflictError,
    TaskInfo,
    TaskState,
)
from ferroq._options import Duration

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CLOSED_PORT_URL = "redis://127.0.0.1:1"


# ---- observers ---------------------------------------------------------------------------------


def qkey(q: str, suffix: str) -> str:
    """A per-queue key: ``asynq:{<q>}:<suffix>``."""
    return f"asynq:{{{q}}}:{suffix}"


def unique_key(q: str, task_type: str, payload: bytes | None) -> str:
    """asynq's lock key: md5 of the payload, or a trailing colon for a nil (absent) payload."""
    digest = "" if payload is None else hashlib.md5(payload).hexdigest()
    return qkey(q, f"unique:{task_type}:{digest}")


def task_key(task_id: str, q: str = "default") -> str:
    return qkey(q, f"t:{task_id}")


def task_hash(r: redis.Redis, task_id: str, q: str = "default") -> dict[str, bytes]:
    raw = cast(dict[bytes, bytes], r.hgetall(task_key(task_id, q)))
    return {k.decode(): v for k, v in raw.items()}


def raw_msg(r: redis.Redis, task_id: str, q: str = "default") -> bytes:
    raw = r.hget(task_key(task_id, q), "msg")
    assert isinstance(raw, bytes), f"no msg for {task_id} in {q}"
    return raw


def stored(r: redis.Redis, task_id: str, q: str = "default") -> dict[str, Any]:
    """The task's ``msg`` field, decoded by ``wire``."""
    return wire.task(raw_msg(r, task_id, q))


def keys(r: redis.Redis) -> set[str]:
    return {k.decode() for k in cast(list[bytes], r.keys("*"))}


def lrange(r: redis.Redis, key: str) -> list[str]:
    return [v.decode() for v in cast(list[bytes], r.lrange(key, 0, -1))]


def smembers(r: redis.Redis, key: str) -> set[str]:
    return {v.decode() for v in cast(set[bytes], r.smembers(key))}


def zrange(r: redis.Redis, key: str) -> list[tuple[str, float]]:
    rows = cast(list[tuple[bytes, float]], r.zrange(key, 0, -1, withscores=True))
    return [(m.decode(), s) for m, s in rows]


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type and content, to prove that a refused call wrote nothing."""
    out: dict[str, Any] = {}
    for k in sorted(keys(r)):
        kind = cast(bytes, r.type(k)).decode()
        value: Any
        if kind == "string":
            value = r.get(k)
        elif kind == "list":
            value = r.lrange(k, 0, -1)
        elif kind == "set":
            value = sorted(cast(set[bytes], r.smembers(k)))
        elif kind == "zset":
            value = r.zrange(k, 0, -1, withscores=True)
        elif kind == "hash":
            value = r.hgetall(k)
        else:
            raise AssertionError(f"unexpected key type {kind} for {k}")
        out[k] = (kind, value)
    return out


def ttl(r: redis.Redis, key: str) -> int:
    return r.ttl(key)


# ---- default enqueue ---------------------------------------------------------------------------


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


# ---- queue -------------------------------------------------------------------------------------


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


# ---- max_retry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"), [(0, 0), (1, 1), (3, 3), (1000, 1000), (-1, 0), (-100, 0)]
)
def test_max_retry_option(client: Client, r: redis.Redis, given: int, expected: int) -> None:
    info = client.enqueue(Task("t"), max_retry=given)
    assert info.max_retry == expected
    m = stored(r, info.id)
    assert m["retry"] == expected
    assert m["retried"] == 0


# ---- timeout and deadline ----------------------------------------------------------------------


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


# ---- unique ------------------------------------------------------------------------------------


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


# ---- process_at / process_in -------------------------------------------------------------------


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
    expected = 4102444800  # 2100-01-01T00:00:00Z
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
    assert math.floor(before + seconds) <= score <= math.floor(after + seconds)
    h = task_hash(r, info.id)
    assert h["state"] == b"scheduled"
    assert "pending_since" not in h
    assert not r.exists(qkey("default", "pending"))
    assert info.state is TaskState.SCHEDULED
    assert info.next_process_at is not None
    assert math.floor(info.next_process_at.timestamp()) == score


def test_process_at_later_in_the_current_second_schedules(client: Client, r: redis.Redis) -> None:
    # asynq compares ProcessAt with now at full precision (`processAt.After(now)`, spec §5): an
    # instant later in the current second is in the future, so the task is scheduled with score
    # floor(process_at), which the forwarder moves on its next pass.
    while time.time() % 1 > 0.5:  # align to the start of a second so process_at stays ahead
        time.sleep(0.05)
    now = time.time()
    process_at = datetime.fromtimestamp(math.floor(now) + 0.99, timezone.utc)
    info = client.enqueue(Task("t"), process_at=process_at)
    assert time.time() < process_at.timestamp()  # it was still in the future after the call
    assert zrange(r, qkey("default", "scheduled")) == [(info.id, float(math.floor(now)))]
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


# ---- task_id -----------------------------------------------------------------------------------


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


# ---- retention ---------------------------------------------------------------------------------


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


# ---- group -------------------------------------------------------------------------------------


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


# ---- headers -----------------------------------------------------------------------------------


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


# ---- enqueue_many ------------------------------------------------------------------------------


def test_enqueue_many_writes_500_tasks_in_order(client: Client, r: redis.Redis) -> None:
    tasks = [Task("bulk", f"{i:03}".encode()) for i in range(500)]
    infos = client.enqueue_many(tasks)
    assert [i.payload for i in infos] == [t.payload for t in tasks]
    ids = [i.id for i in infos]
    assert len(set(ids)) == 500
    assert all(UUID4.match(i) for i in ids)
    assert all(i.state is TaskState.PENDING for i in infos)
    # oldest at the tail, so workers take them in input order
    assert lrange(r, qkey("default", "pending"))[::-1] == ids
    assert smembers(r, "asynq:queues") == {"default"}

    pipe = r.pipeline()
    for i in ids:
        pipe.hgetall(task_key(i))
    hashes = cast(list[dict[bytes, bytes]], pipe.execute())
    for n, (task_id, h) in enumerate(zip(ids, hashes, strict=True)):
        assert h[b"state"] == b"pending"
        assert b"pending_since" in h
        m = wire.task(h[b"msg"])
        assert (m["id"], m["type"], m["payload"], m["queue"]) == (
            task_id,
            "bulk",
            f"{n:03}".encode(),
            "default",
        )
        assert (m["retry"], m["timeout"]) == (25, 1800)


def test_enqueue_many_applies_options_to_every_task(client: Client, r: redis.Redis) -> None:
    before = time.time()
    infos = client.enqueue_many(
        [Task("a", b"1"), Task("b", b"2")],
        queue="q",
        max_retry=2,
        timeout=7,
        retention=60,
        process_in=600,
        headers={"h": "v"},
    )
    assert [i.state for i in infos] == [TaskState.SCHEDULED] * 2
    scheduled = zrange(r, qkey("q", "scheduled"))
    assert {m for m, _s in scheduled} == {i.id for i in infos}
    assert all(
        math.floor(before + 600) <= s <= math.floor(time.time() + 600) for _m, s in scheduled
    )
    for info in infos:
        m = stored(r, info.id, "q")
        assert (m["queue"], m["retry"], m["timeout"], m["retention"], m["headers"]) == (
            "q",
            2,
            7,
            60,
            {"h": "v"},
        )
    assert smembers(r, "asynq:queues") == {"q"}


def test_enqueue_many_of_nothing_writes_nothing(client: Client, r: redis.Redis) -> None:
    assert client.enqueue_many([]) == []
    assert keys(r) == set()


def test_enqueue_many_reports_refused_tasks_and_keeps_the_others(
    client: Client, r: redis.Redis
) -> None:
    tasks = [Task("t", b"a"), Task("t", b"b"), Task("t", b"a"), Task("t", b"c")]
    with pytest.raises(BatchEnqueueError) as caught:
        client.enqueue_many(tasks, unique=60)
    results = caught.value.results
    assert len(results) == 4
    assert isinstance(results[2], DuplicateTaskError)
    assert caught.value.errors == [results[2]]
    written = [results[0], results[1], results[3]]
    assert all(isinstance(x, TaskInfo) for x in written)
    infos = cast(list[TaskInfo], written)
    assert [i.payload for i in infos] == [b"a", b"b", b"c"]

    assert lrange(r, qkey("default", "pending"))[::-1] == [i.id for i in infos]
    for info in infos:
        lock = unique_key("default", "t", info.payload)
        assert r.get(lock) == info.id.encode()
        assert task_hash(r, info.id)["unique_key"] == lock.encode()
        assert stored(r, info.id)["payload"] == info.payload
    task_hashes = {k for k in keys(r) if k.startswith("asynq:{default}:t:")}
    assert task_hashes == {task_key(i.id) for i in infos}


def test_enqueue_many_against_existing_lock(client: Client, r: redis.Redis) -> None:
    held = client.enqueue(Task("t", b"a"), unique=60)
    with pytest.raises(BatchEnqueueError) as caught:
        client.enqueue_many([Task("t", b"a"), Task("t", b"z")], unique=60)
    first, second = caught.value.results
    assert isinstance(first, DuplicateTaskError)
    assert isinstance(second, TaskInfo)
    assert lrange(r, qkey("default", "pending")) == [second.id, held.id]
    assert r.get(unique_key("default", "t", b"a")) == held.id.encode()


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: Task(""), InvalidArgumentError, id="empty-type"),
        pytest.param(lambda: Task("  "), InvalidArgumentError, id="blank-type"),
        pytest.param(lambda: Task("t", cast(Any, "str payload")), TypeError, id="str-payload"),
        pytest.param(lambda: Task("t", cast(Any, 123)), TypeError, id="int-payload"),
        pytest.param(lambda: Task(cast(Any, 5)), TypeError, id="int-type"),
        pytest.param(lambda: Task("t", headers=cast(Any, {"a": 1})), TypeError, id="int-header"),
    ],
)
def test_bad_task_is_refused(
    r: redis.Redis, make: Callable[[], Task], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make()
    assert keys(r) == set()


@pytest.mark.parametrize("payload", [bytearray(b"\x00ab\xff"), memoryview(b"\x00ab\xff")])
def test_bytes_like_payload_is_accepted(client: Client, r: redis.Redis, payload: object) -> None:
    task = Task("t", cast(Any, payload))
    assert type(task.payload) is bytes
    info = client.enqueue(task)
    assert stored(r, info.id)["payload"] == b"\x00ab\xff"
    assert info.payload == b"\x00ab\xff"


NAIVE = datetime(2100, 1, 1)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue=""), InvalidArgumentError, id="queue-empty"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue=" \t"), InvalidArgumentError, id="queue-blank"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), deadline=NAIVE),
            InvalidArgumentError,
            id="deadline-naive",
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), process_at=NAIVE), InvalidArgumentError, id="at-naive"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), timeout=-1), InvalidArgumentError, id="timeout-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), retention=-1.0), InvalidArgumentError, id="retention-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), process_in=-5), InvalidArgumentError, id="in-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), unique=float("inf")),
            InvalidArgumentError,
            id="unique-inf",
        ),
        pytest.param(lambda c: c.enqueue(cast(Any, "t")), TypeError, id="str-task"),
        pytest.param(lambda c: c.enqueue(cast(Any, None)), TypeError, id="none-task"),
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=cast(Any, True)), TypeError, id="retry-bool"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=cast(Any, 1.5)), TypeError, id="retry-float"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), timeout=cast(Any, "5")), TypeError, id="timeout-str"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), deadline=cast(Any, 1e9)), TypeError, id="deadline-float"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), headers=cast(Any, {"a": 1})), TypeError, id="headers-int"
        ),
        pytest.param(
            lambda c: c.enqueue_many([Task("t"), cast(Any, b"x")]), TypeError, id="many-not-task"
        ),
    ],
)
def test_bad_enqueue_is_refused_and_writes_nothing(
    client: Client, r: redis.Redis, call: Callable[[Client], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(client)
    assert keys(r) == set()
    # the client still works afterwards
    info = client.enqueue(Task("t"))
    assert lrange(r, qkey("default", "pending")) == [info.id]


def test_enqueue_many_with_invalid_options_writes_nothing(client: Client, r: redis.Redis) -> None:
    # options are shared and checked before anything is sent: one plain InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="queue"):
        client.enqueue_many([Task("a"), Task("b")], queue=" ")
    assert keys(r) == set()


def test_bad_enqueue_leaves_existing_data_unchanged(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"p"), unique=60, queue="q")
    before = snapshot(r)
    calls: list[Callable[[], object]] = [
        lambda: client.enqueue(Task("t"), queue=""),
        lambda: client.enqueue(Task("t"), queue="q", unique=0.5),
        lambda: client.enqueue(Task("t"), queue="q", task_id=" "),
        lambda: client.enqueue(Task("t"), queue="q", deadline=NAIVE),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()
    assert snapshot(r) == before


# ---- connection --------------------------------------------------------------------------------


def test_unreachable_redis_raises_connection_error_on_enqueue() -> None:
    with Client(CLOSED_PORT_URL) as c, pytest.raises(BrokerConnectionError):
        c.enqueue(Task("t"))


def test_unreachable_redis_raises_connection_error_on_ping() -> None:
    c = Client(CLOSED_PORT_URL)
    with pytest.raises(BrokerConnectionError):
        c.ping()
    c.close()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:notaport",
        "redis://127.0.0.1:99999999",
        "redis://127.0.0.1:6379/abc",
        "unix://",
    ],
)
def test_malformed_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Client(url)


def test_context_manager_and_ping(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url) as c:
        assert isinstance(c, Client)
        c.ping()
        first = c.enqueue(Task("t", b"1"))
    # closed clients reconnect when used again
    c.ping()
    second = c.enqueue(Task("t", b"2"))
    c.close()
    assert lrange(r, qkey("default", "pending")) == [second.id, first.id]


def test_client_can_be_reused_after_close(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t"))
    client.close()
    client.close()
    client.enqueue(Task("t"))
    assert r.llen(qkey("default", "pending")) == 2


def test_redis_url_from_environment(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    with Client() as c:
        c.ping()
        info = c.enqueue(Task("t"))
    assert lrange(r, qkey("default", "pending")) == [info.id]
