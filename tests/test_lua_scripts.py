"""Direct checks of Lua scripts whose edge cases a running server rarely reaches."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

LUA = Path(__file__).resolve().parent.parent / "rust" / "rdb" / "lua"
DAY = time.strftime("%Y-%m-%d", time.gmtime())
KEYS = [
    "asynq:{q}:active",
    "asynq:{q}:lease",
    f"asynq:{{q}}:processed:{DAY}",
    "asynq:{q}:processed",
]


def done_batch(r: redis.Redis, *pairs: tuple[str, str]) -> list[int]:
    script = r.register_script((LUA / "done_batch.lua").read_text())
    expiry = int(time.time()) + 90 * 86400
    args: list[str | int] = [expiry]
    locks = [lock for _, lock in pairs if lock]
    for task_id, lock in pairs:
        args += [task_id, locks.index(lock) + 1 if lock else 0]
    keys = [*KEYS, *(f"asynq:{{q}}:t:{task_id}" for task_id, _ in pairs), *locks]
    return list(script(keys=keys, args=args))


def leased(r: redis.Redis, *ids: str) -> None:
    for i in ids:
        r.lpush("asynq:{q}:active", i)
        r.zadd("asynq:{q}:lease", {i: int(time.time()) + 30})
        r.hset(f"asynq:{{q}}:t:{i}", mapping={"msg": b"x", "state": "active"})


def test_done_batch_finishes_each_task_and_counts_once(r: redis.Redis) -> None:
    leased(r, "a", "b", "c")
    r.set("asynq:{q}:unique:t:A", "a")
    r.set("asynq:{q}:unique:t:B", "someone-else")
    codes = done_batch(r, ("a", "asynq:{q}:unique:t:A"), ("b", "asynq:{q}:unique:t:B"), ("c", ""))
    assert codes == [1, 1, 1]
    assert r.llen("asynq:{q}:active") == 0
    assert r.zcard("asynq:{q}:lease") == 0
    assert not r.exists("asynq:{q}:t:a", "asynq:{q}:t:b", "asynq:{q}:t:c")
    assert r.get(KEYS[2]) == b"3"
    assert r.get(KEYS[3]) == b"3"
    assert 0 < r.ttl(KEYS[2]) <= 90 * 86400
    assert not r.exists("asynq:{q}:unique:t:A"), "the task's own lock is released"
    assert r.get("asynq:{q}:unique:t:B") == b"someone-else", "another task's lock is kept"


def test_done_batch_reports_tasks_another_server_moved(r: redis.Redis) -> None:
    leased(r, "a", "b")
    # Recovered elsewhere after its lease expired: off active and lease, as the recoverer moves it.
    r.lrem("asynq:{q}:active", 0, "b")
    r.zrem("asynq:{q}:lease", "b")
    assert done_batch(r, ("a", ""), ("b", ""), ("gone", "")) == [1, 0, 0]
    assert r.get(KEYS[3]) == b"1", "only finished tasks are counted"
    assert r.exists("asynq:{q}:t:b"), "a task that was not found is not deleted"


def test_done_batch_total_wraps_at_the_int64_limit(r: redis.Redis) -> None:
    leased(r, "a", "b")
    r.set(KEYS[3], 2**63 - 1)
    assert done_batch(r, ("a", ""), ("b", "")) == [1, 1]
    assert r.get(KEYS[3]) == b"2"


def test_done_batch_daily_counter_keeps_its_first_expiry(r: redis.Redis) -> None:
    leased(r, "a")
    r.set(KEYS[2], 5)
    r.expire(KEYS[2], 100)
    assert done_batch(r, ("a", "")) == [1]
    assert r.get(KEYS[2]) == b"6"
    assert 0 < r.ttl(KEYS[2]) <= 100


def test_batch_scripts_refuse_keys_that_do_not_match_their_tasks(r: redis.Redis) -> None:
    # The task hashes are named in KEYS, one per task: a caller that got the count wrong is
    # refused before anything is written, rather than writing the wrong hash.
    leased(r, "a", "b")
    done = r.register_script((LUA / "done_batch.lua").read_text())
    with pytest.raises(redis.ResponseError, match="done_batch: 5 keys for 2 tasks and 0 locks"):
        done(keys=[*KEYS, "asynq:{q}:t:a"], args=[0, "a", 0, "b", 0])
    with pytest.raises(redis.ResponseError, match="done_batch: 6 keys for 1 tasks and 0 locks"):
        done(keys=[*KEYS, "asynq:{q}:t:a", "asynq:{q}:unique:x"], args=[0, "a", 0])
    with pytest.raises(redis.ResponseError, match="done_batch: 5 keys for 1 tasks and 1 locks"):
        done(keys=[*KEYS, "asynq:{q}:t:a"], args=[0, "a", 1])
    assert r.llen("asynq:{q}:active") == 2
    enqueue = r.register_script((LUA / "enqueue_batch.lua").read_text())
    with pytest.raises(redis.ResponseError, match="enqueue_batch: 2 task keys for 1 tasks"):
        enqueue(
            keys=["asynq:{q}:pending", "asynq:{q}:t:x", "asynq:{q}:t:y"],
            args=[0, "asynq:{q}:wake", "x", b"msg"],
        )
    assert not r.exists("asynq:{q}:pending", "asynq:{q}:t:x")


def test_the_janitor_deletes_only_what_is_still_expired(r: redis.Redis) -> None:
    now = int(time.time())
    completed = "asynq:{q}:completed"
    for task_id, score in (("old", now - 10), ("extended", now + 3600)):
        r.zadd(completed, {task_id: score})
        r.hset(f"asynq:{{q}}:t:{task_id}", "state", "completed")
    janitor = r.register_script((LUA / "delete_expired_completed.lua").read_text())
    # Both were read as expired; "extended" had its retention pushed back since, "gone" was
    # already taken by another janitor.
    ids = ["old", "extended", "gone"]
    keys = [completed, *(f"asynq:{{q}}:t:{i}" for i in ids)]
    assert janitor(keys=keys, args=[now, *ids]) == 1
    assert r.zrange(completed, 0, -1) == [b"extended"]
    assert not r.exists("asynq:{q}:t:old") and r.exists("asynq:{q}:t:extended")
    with pytest.raises(redis.ResponseError, match="1 task keys for 2 ids"):
        janitor(keys=keys[:2], args=[now, "old", "extended"])


def test_outcome_scripts_answer_not_found_with_a_code_not_an_error(r: redis.Redis) -> None:
    """0 is "not active here": the core reads a typed code, never an error's text."""
    expiry = int(time.time()) + 90 * 86400
    done = r.register_script((LUA / "done.lua").read_text())
    requeue = r.register_script((LUA / "requeue.lua").read_text())
    task_keys = ["asynq:{q}:active", "asynq:{q}:lease", "asynq:{q}:t:gone", *KEYS[2:]]
    assert done(keys=task_keys, args=["gone", expiry, 2**63 - 1]) == 0
    leased(r, "a")
    keys_a = ["asynq:{q}:active", "asynq:{q}:lease", "asynq:{q}:t:a", *KEYS[2:]]
    assert done(keys=keys_a, args=["a", expiry, 2**63 - 1]) == 1
    requeue_keys = ["asynq:{q}:active", "asynq:{q}:lease", "asynq:{q}:pending", "asynq:{q}:t:a"]
    assert requeue(keys=requeue_keys, args=["a"]) == 0, "already finished"
