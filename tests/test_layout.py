"""The layout and queue-selection functions exposed by the core agree with what it does."""

from __future__ import annotations

from collections import Counter

import redis

from ferroq import Client, Task
from ferroq._native import NativeQueueSelector, queue_keys, task_key, unique_key


def test_queue_keys_are_asynqs() -> None:
    keys = queue_keys("emails")
    assert keys["pending"] == "asynq:{emails}:pending"
    assert keys["lease"] == "asynq:{emails}:lease"
    assert keys["task_prefix"] == "asynq:{emails}:t:"
    assert queue_keys("emails", namespace="other")["retry"] == "other:{emails}:retry"
    assert task_key("emails", "abc") == "asynq:{emails}:t:abc"


def test_keys_name_what_the_client_writes(client: Client, r: redis.Redis) -> None:
    info = client.enqueue(Task("t", b"payload"), queue="emails", unique=60)
    keys = queue_keys("emails")
    assert r.lrange(keys["pending"], 0, -1) == [info.id.encode()]
    assert r.hget(task_key("emails", info.id), "state") == b"pending"
    assert r.get(unique_key("emails", "t", b"payload")) == info.id.encode()
    nil = client.enqueue(Task("n"), queue="emails", unique=60)
    assert r.get(unique_key("emails", "n", None)) == nil.id.encode()


def test_strict_priority_order_is_fixed() -> None:
    s = NativeQueueSelector({"low": 1, "high": 6, "default": 3}, strict_priority=True)
    assert s.queues() == [("high", 6), ("default", 3), ("low", 1)]
    assert {tuple(s.order()) for _ in range(100)} == {("high", "default", "low")}


def test_weighted_order_follows_the_weights() -> None:
    s = NativeQueueSelector({"high": 6, "default": 3, "low": 1})
    firsts: Counter[str] = Counter()
    for _ in range(10_000):
        order = s.order()
        assert sorted(order) == ["default", "high", "low"]
        firsts[order[0]] += 1
    # asynq's rule: a queue comes first with probability weight / total (6/10, 3/10, 1/10);
    # the bounds are many standard deviations (~0.005) wide.
    assert 0.55 < firsts["high"] / 10_000 < 0.65
    assert 0.25 < firsts["default"] / 10_000 < 0.35
    assert 0.07 < firsts["low"] / 10_000 < 0.13


def test_priorities_are_normalised_and_bad_entries_dropped() -> None:
    s = NativeQueueSelector({"a": 4, "b": 2, "": 5, "c": 0})
    assert s.queues() == [("a", 2), ("b", 1)]
    assert NativeQueueSelector({}).queues() == [("default", 1)]
