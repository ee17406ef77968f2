"""Direct checks of the Inspector's scripts (run, archive, delete, update, remove queue): what
they move, what they leave alone when a task moved under them, and their key-type guards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from test_lua_leases import trim_archive

LUA = Path(__file__).resolve().parent.parent / "rust" / "rdb" / "lua"
Q = "asynq:{q}"
T = f"{Q}:t:"


def script(r: redis.Redis, name: str) -> redis.commands.core.Script:
    return r.register_script((LUA / f"{name}.lua").read_text())


def task(r: redis.Redis, i: str, state: str, **fields: str) -> None:
    mapping: dict[str, str] = {"msg": f"m-{i}", "state": state, **fields}
    r.hset(T + i, mapping=mapping)  # type: ignore[arg-type]


def run_tasks(r: redis.Redis, source: str, ids: list[str], group: str = "") -> int:
    keys = [source, f"{Q}:pending", f"{Q}:groups", *(T + i for i in ids)]
    return int(script(r, "run_tasks")(keys=keys, args=[group, 123, f"{Q}:wake", *ids]))


def archive_tasks(
    r: redis.Redis, source: str, ids: list[str], *, kind: str = "zset", now: int = 1000,
    group: str = "",
) -> int:  # fmt: skip
    keys = [source, f"{Q}:archived", f"{Q}:groups", *(T + i for i in ids)]
    args: list[str | int] = [group, now, kind, *ids]
    return int(script(r, "archive_tasks")(keys=keys, args=args))


def trim(r: redis.Redis, ids: list[str], *, cap: int, cutoff: int = 0) -> int:
    """trim_archive.lua after archive_tasks archived ``ids``, naming every archived hash."""
    return trim_archive(r, cutoff=cutoff, cap=cap, just=tuple(ids))[0]


def delete_tasks(
    r: redis.Redis, source: str, ids: list[str], locks: dict[str, str] | None = None,
    *, kind: str = "zset", group: str = "",
) -> int:  # fmt: skip
    locks = locks or {}
    lock_keys = [locks[i] for i in ids if i in locks]
    keys = [source, f"{Q}:groups", *(T + i for i in ids), *lock_keys]
    args: list[str | int] = [group, kind]
    n = 0
    for i in ids:
        if i in locks:
            n += 1
            args += [i, n]
        else:
            args += [i, 0]
    return int(script(r, "delete_tasks")(keys=keys, args=args))


def test_run_moves_what_is_still_in_the_source_and_drops_ghosts(r: redis.Redis) -> None:
    for i in ("a", "b", "c"):
        task(r, i, "retry")
    r.zadd(f"{Q}:retry", {"a": 1, "b": 2, "ghost": 3})
    # "c" left the retry set (a forwarder moved it) after the caller read it.
    assert run_tasks(r, f"{Q}:retry", ["a", "b", "c", "ghost"]) == 2
    assert r.lrange(f"{Q}:pending", 0, -1) == [b"b", b"a"]
    assert r.hmget(T + "a", "state", "pending_since") == [b"pending", b"123"]
    assert r.hget(T + "c", "state") == b"retry", "a task no longer in the source is left alone"
    assert r.zcard(f"{Q}:retry") == 0, "the ghost id is dropped"
    assert not r.exists(T + "ghost")


def test_run_of_a_whole_group_forgets_the_group(r: redis.Redis) -> None:
    task(r, "a", "aggregating", group="g")
    task(r, "b", "aggregating", group="g")
    r.zadd(f"{Q}:g:g", {"a": 1, "b": 2})
    r.sadd(f"{Q}:groups", "g", "other")
    assert run_tasks(r, f"{Q}:g:g", ["a"], group="g") == 1
    assert r.sismember(f"{Q}:groups", "g"), "not empty yet"
    assert run_tasks(r, f"{Q}:g:g", ["b"], group="g") == 1
    assert r.smembers(f"{Q}:groups") == {b"other"}


def test_run_announces_moved_tasks_to_idle_servers(r: redis.Redis) -> None:
    p = r.pubsub()  # type: ignore[no-untyped-call]
    p.subscribe(f"{Q}:wake")
    assert p.get_message(timeout=1) is not None  # the subscribe confirmation
    task(r, "a", "scheduled")
    r.zadd(f"{Q}:scheduled", {"a": 1})
    assert run_tasks(r, f"{Q}:scheduled", ["a", "nothing"]) == 1
    msg = p.get_message(timeout=2)
    assert msg is not None and msg["channel"] == f"{Q}:wake".encode()
    assert run_tasks(r, f"{Q}:scheduled", ["nothing"]) == 0
    assert p.get_message(timeout=0.2) is None, "no announcement when nothing moved"
    p.close()


@pytest.mark.parametrize("name", ["run_tasks", "archive_tasks", "delete_tasks"])
def test_a_key_of_the_wrong_type_changes_nothing(r: redis.Redis, name: str) -> None:
    task(r, "a", "scheduled")
    r.zadd(f"{Q}:scheduled", {"a": 1})
    r.set(f"{Q}:groups", "not a set")
    before = {k: r.dump(k) for k in r.keys("*")}
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        if name == "run_tasks":
            run_tasks(r, f"{Q}:scheduled", ["a"])
        elif name == "archive_tasks":
            archive_tasks(r, f"{Q}:scheduled", ["a"])
        else:
            delete_tasks(r, f"{Q}:scheduled", ["a"])
    assert {k: r.dump(k) for k in r.keys("*")} == before


def test_archive_from_the_pending_list_and_a_zset(r: redis.Redis) -> None:
    for i in ("a", "b"):
        task(r, i, "pending")
    r.lpush(f"{Q}:pending", "a", "b")
    task(r, "s", "scheduled")
    r.zadd(f"{Q}:scheduled", {"s": 5})
    assert archive_tasks(r, f"{Q}:pending", ["a", "b", "zz"], kind="list") == 2
    assert archive_tasks(r, f"{Q}:scheduled", ["s"]) == 1
    assert r.llen(f"{Q}:pending") == 0 and r.zcard(f"{Q}:scheduled") == 0
    assert r.zrange(f"{Q}:archived", 0, -1, withscores=True) == [
        (b"a", 1000.0), (b"b", 1000.0), (b"s", 1000.0),
    ]  # fmt: skip
    assert {r.hget(T + i, "state") for i in "abs"} == {b"archived"}


def test_the_trim_after_an_archive_keeps_what_was_archived(r: redis.Redis) -> None:
    # Older entries share the archive's second and sort after the new ones by ID.
    for i in ("x", "y", "z", "old"):
        task(r, i, "archived")
    r.zadd(f"{Q}:archived", {"x": 1000, "y": 1000, "z": 1000, "old": 10})
    for i in ("a", "b"):
        task(r, i, "retry")
    r.zadd(f"{Q}:retry", {"a": 1, "b": 2})
    assert archive_tasks(r, f"{Q}:retry", ["a", "b"]) == 2
    assert trim(r, ["a", "b"], cap=3, cutoff=100) == 3
    kept = r.zrange(f"{Q}:archived", 0, -1)
    assert set(kept) == {b"a", b"b", b"z"}, kept
    assert not r.exists(T + "old"), "older than the cutoff: deleted with its hash"
    assert not r.exists(T + "x") and not r.exists(T + "y"), "trimmed by size: hashes deleted"
    # Only the tasks just archived are left to trim: they go too, oldest rank first.
    task(r, "c", "retry")
    r.zadd(f"{Q}:retry", {"c": 1})
    assert archive_tasks(r, f"{Q}:retry", ["c"]) == 1
    assert trim(r, ["c"], cap=1) == 3
    assert r.zrange(f"{Q}:archived", 0, -1) == [b"c"]
    assert not r.exists(T + "a") and r.exists(T + "c")


def test_delete_releases_only_locks_the_task_owns(r: redis.Redis) -> None:
    for i in ("a", "b", "c"):
        task(r, i, "scheduled")
    r.zadd(f"{Q}:scheduled", {"a": 1, "b": 2, "c": 3})
    r.set(f"{Q}:unique:t:A", "a")
    r.set(f"{Q}:unique:t:B", "someone-else")
    locks = {"a": f"{Q}:unique:t:A", "b": f"{Q}:unique:t:B"}
    assert delete_tasks(r, f"{Q}:scheduled", ["a", "b", "c"], locks) == 3
    assert not r.exists(T + "a", T + "b", T + "c", f"{Q}:unique:t:A")
    assert r.get(f"{Q}:unique:t:B") == b"someone-else"
    assert r.zcard(f"{Q}:scheduled") == 0


def test_delete_leaves_a_task_that_moved_and_survives_a_broken_lock(r: redis.Redis) -> None:
    task(r, "a", "pending")
    task(r, "b", "active")
    r.lpush(f"{Q}:pending", "a")
    r.lpush(f"{Q}:active", "b")
    r.hset(f"{Q}:unique:t:A", "x", "a hash where a lock should be")
    n = delete_tasks(r, f"{Q}:pending", ["a", "b"], {"a": f"{Q}:unique:t:A"}, kind="list")
    assert n == 1
    assert not r.exists(T + "a") and r.exists(T + "b"), "b was not in pending: left alone"
    assert r.exists(f"{Q}:unique:t:A"), "a lock key of another type is not touched"


def test_update_payload_writes_only_over_what_was_read(r: redis.Redis) -> None:
    upd = script(r, "update_payload")
    task(r, "a", "scheduled")
    assert upd(keys=[T + "a"], args=[b"m-a", b"new"]) == 1
    assert r.hget(T + "a", "msg") == b"new"
    assert upd(keys=[T + "a"], args=[b"m-a", b"newer"]) == 0, "changed since it was read"
    r.hset(T + "a", "state", "pending")
    assert upd(keys=[T + "a"], args=[b"new", b"newer"]) == 0, "no longer scheduled"
    assert upd(keys=[T + "missing"], args=[b"", b"x"]) == 0
    assert r.hget(T + "a", "msg") == b"new"


BASE = [f"{Q}:{n}" for n in ("pending", "active", "scheduled", "retry", "archived", "lease",
                               "completed", "groups", "aggregation_sets")]  # fmt: skip


def remove_queue(
    r: redis.Redis, force: str, *, groups: tuple[str, ...] = (), sets: tuple[str, ...] = (),
    named: tuple[str, ...] = (),
) -> Any:  # fmt: skip
    """remove_queue.lua, naming ``groups``, aggregation ``sets`` and the hashes/locks ``named``."""
    keys = [*BASE, *(f"{Q}:g:{g}" for g in groups), *sets, *named]
    args: list[str | int] = [force, T, len(groups), *groups, len(sets), f"{Q}:"]
    return script(r, "remove_queue")(keys=keys, args=args)


def remove_queue_as_the_inspector(r: redis.Redis, force: str, **kw: Any) -> Any:
    """remove_queue.lua called again with the keys it asks for, as the Inspector calls it."""
    named: tuple[str, ...] = ()
    while isinstance(out := remove_queue(r, force, named=named, **kw), list):
        assert out, "asked for nothing"
        named += tuple(k.decode() for k in out)
    return out


def test_remove_queue_refuses_a_queue_with_work_unless_forced(r: redis.Redis) -> None:
    task(r, "done", "completed", unique_key=f"{Q}:unique:t:D")
    r.set(f"{Q}:unique:t:D", "done")
    r.zadd(f"{Q}:completed", {"done": int(time.time())})
    task(r, "r", "retry")
    r.zadd(f"{Q}:retry", {"r": 1})
    assert remove_queue(r, "0") == -1
    assert r.exists(f"{Q}:retry", T + "r")
    r.lpush(f"{Q}:active", "busy")
    assert remove_queue(r, "1") == -2, "never with active tasks"
    r.delete(f"{Q}:active")
    assert remove_queue_as_the_inspector(r, "1") == 1
    assert not r.exists(*BASE)
    assert not r.exists(T + "r", T + "done", f"{Q}:unique:t:D"), "tasks and their locks go too"
    r.zadd(f"{Q}:completed", {"done": 1})
    assert remove_queue_as_the_inspector(r, "0") == 1, "completed tasks alone do not keep a queue"


def test_remove_queue_deletes_nothing_until_every_hash_and_lock_is_named(r: redis.Redis) -> None:
    task(r, "a", "pending", unique_key=f"{Q}:unique:t:A")
    task(r, "b", "scheduled", unique_key="elsewhere:{x}:unique:t:B")
    r.set(f"{Q}:unique:t:A", "a")
    r.set("elsewhere:{x}:unique:t:B", "b")
    r.lpush(f"{Q}:pending", "a", "ghost")
    r.zadd(f"{Q}:scheduled", {"b": 1, "a": 2})  # "a" twice: asked for once
    asked = remove_queue(r, "1")
    assert sorted(asked) == [f"{T}a".encode(), f"{T}b".encode(), f"{T}ghost".encode()]
    assert r.llen(f"{Q}:pending") == 2 and r.exists(T + "a"), "nothing deleted yet"
    hashes = tuple(k.decode() for k in asked)
    # A lock outside the queue's prefix is not the queue's: not asked for, and left.
    assert remove_queue(r, "1", named=hashes) == [f"{Q}:unique:t:A".encode()]
    assert remove_queue(r, "1", named=(*hashes, f"{Q}:unique:t:A")) == 1
    assert not r.exists(T + "a", T + "b", f"{Q}:unique:t:A", *BASE)
    assert r.get("elsewhere:{x}:unique:t:B") == b"b"
    with pytest.raises(redis.ResponseError, match="remove_queue: 9 keys for 1 groups"):
        script(r, "remove_queue")(keys=BASE, args=["1", T, 1, "g"])


def stray(r: redis.Redis, ids: list[str], locks: dict[str, str] | None = None) -> int:
    names = ["pending", "active", "scheduled", "retry", "archived", "completed"]
    keys = [f"{Q}:{n}" for n in names] + [T + i for i in ids]
    for lock, owner in (locks or {}).items():
        keys += [lock, T + owner]
    return int(script(r, "delete_stray")(keys=keys, args=[len(ids), *ids]))


def test_delete_stray_keeps_every_task_a_container_holds(r: redis.Redis) -> None:
    # A task enqueued while its queue was being deleted is held by its new pending list.
    for i, state in (("p", "pending"), ("a", "active"), ("s", "scheduled"), ("c", "completed")):
        task(r, i, state)
    r.lpush(f"{Q}:pending", "p")
    r.lpush(f"{Q}:active", "a")
    r.zadd(f"{Q}:scheduled", {"s": 1})
    r.zadd(f"{Q}:completed", {"c": 1})
    task(r, "g", "aggregating", group="grp")
    task(r, "orphan", "archived")
    r.set(f"{Q}:unique:t:P", "p")
    r.set(f"{Q}:unique:t:GONE", "gone")
    locks = {f"{Q}:unique:t:P": "p", f"{Q}:unique:t:GONE": "gone"}
    assert stray(r, ["p", "a", "s", "c", "g", "orphan"], locks) == 2
    assert all(r.exists(T + i) for i in ("p", "a", "s", "c", "g"))
    assert not r.exists(T + "orphan")
    assert r.exists(f"{Q}:unique:t:P") and not r.exists(f"{Q}:unique:t:GONE")


def test_remove_queue_reads_groups_and_aggregation_sets_again_when_they_changed(
    r: redis.Redis,
) -> None:
    task(r, "a", "aggregating", group="g1", unique_key=f"{Q}:unique:t:A")
    r.set(f"{Q}:unique:t:A", "a")
    r.zadd(f"{Q}:g:g1", {"a": 1})
    r.sadd(f"{Q}:groups", "g1")
    task(r, "b", "aggregating", group="g2")
    r.zadd(f"{Q}:g:g2:set1", {"b": 1})
    r.zadd(f"{Q}:aggregation_sets", {f"{Q}:g:g2:set1": 99})
    # Read before g1 and the aggregation set appeared: told to read again.
    assert remove_queue(r, "1") == -3
    assert remove_queue(r, "1", groups=("g1",)) == -3
    # An aggregation set is work, like a group.
    full = {"groups": ("g1",), "sets": (f"{Q}:g:g2:set1",)}
    assert remove_queue(r, "0", **full) == -1
    assert remove_queue_as_the_inspector(r, "1", **full) == 1
    assert not r.exists(*BASE, f"{Q}:g:g1", f"{Q}:g:g2:set1", T + "a", T + "b", f"{Q}:unique:t:A")


def test_archive_leaves_a_task_that_left_the_pending_list(r: redis.Redis) -> None:
    task(r, "gone", "active")  # a server leased it after the caller read the list
    task(r, "here", "pending")
    r.lpush(f"{Q}:pending", "here")
    assert archive_tasks(r, f"{Q}:pending", ["gone", "here"], kind="list") == 1
    assert r.hget(T + "gone", "state") == b"active"
    assert r.zrange(f"{Q}:archived", 0, -1) == [b"here"]


def test_archive_trims_by_age_alone(r: redis.Redis) -> None:
    task(r, "old", "archived")
    r.zadd(f"{Q}:archived", {"old": 10})
    task(r, "d", "retry")
    r.zadd(f"{Q}:retry", {"d": 1})
    assert archive_tasks(r, f"{Q}:retry", ["d"]) == 1
    assert trim(r, ["d"], cap=100, cutoff=100) == 1
    assert r.zrange(f"{Q}:archived", 0, -1) == [b"d"]
    assert not r.exists(T + "old")


@pytest.mark.parametrize("name", ["archive_tasks", "delete_tasks"])
def test_acting_on_a_whole_group_forgets_the_group(r: redis.Redis, name: str) -> None:
    for i in ("a", "b"):
        task(r, i, "aggregating", group="g")
    r.zadd(f"{Q}:g:g", {"a": 1, "b": 2})
    r.sadd(f"{Q}:groups", "g", "other")
    act = archive_tasks if name == "archive_tasks" else delete_tasks
    assert act(r, f"{Q}:g:g", ["a"], group="g") == 1
    assert r.sismember(f"{Q}:groups", "g"), "not empty yet"
    assert act(r, f"{Q}:g:g", ["b"], group="g") == 1
    assert r.smembers(f"{Q}:groups") == {b"other"}
