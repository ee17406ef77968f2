"""``enqueue_many`` against real Redis and Valkey: order, shared options, refused tasks."""

from __future__ import annotations

import math
import time
from typing import cast

import pytest
import redis

import wire
from client_helpers import (
    UUID4,
    keys,
    lrange,
    qkey,
    smembers,
    stored,
    task_hash,
    task_key,
    unique_key,
    zrange,
)
from ferroq import (
    BatchEnqueueError,
    Client,
    DuplicateTaskError,
    Task,
    TaskInfo,
    TaskState,
)


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
    assert all(math.ceil(before + 600) <= s <= math.ceil(time.time() + 600) for _m, s in scheduled)
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
