"""Direct checks of the scripts that own a leased task: an outcome writes nothing unless the task is
still leased here, ghosts leave nothing behind, a broken queue is skipped, and nothing stays in
``active`` that no lease covers. Each runs the script file on a real Redis, as the core does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis

from test_lua_scripts import LUA

Q = "asynq:{q}"
DAY = time.strftime("%Y-%m-%d", time.gmtime())
MAX = 2**63 - 1


def script(r: redis.Redis, name: str) -> Callable[..., Any]:
    return r.register_script((LUA / f"{name}.lua").read_text())


def running(r: redis.Redis, task_id: str, *, lease: bool = True, lock: str = "") -> None:
    """A task as dequeue leaves it: in active, leased, its hash in state active."""
    r.lpush(f"{Q}:active", task_id)
    if lease:
        r.zadd(f"{Q}:lease", {task_id: int(time.time()) + 30})
    r.hset(f"{Q}:t:{task_id}", mapping={"msg": b"m", "state": "active"})
    if lock:
        r.set(lock, task_id)


def outcome_calls(
    r: redis.Redis, task_id: str, lock: str, cutoff: int = MAX
) -> dict[str, Callable[[], Any]]:
    """Each outcome script, called for ``task_id`` with its unique lock ``lock``.

    ``cutoff`` is the latest lease a retry or an archive may take over (a recovery's); a
    handler's outcome takes any.
    """
    now = int(time.time())
    exp = now + 90 * 86400
    counters = [f"{Q}:processed:{DAY}", f"{Q}:failed:{DAY}", f"{Q}:processed", f"{Q}:failed"]
    hash_key = f"{Q}:t:{task_id}"
    base = [f"{Q}:active", f"{Q}:lease"]
    return {
        "done": lambda: script(r, "done")(
            keys=[*base, hash_key, counters[0], counters[2], lock], args=[task_id, exp, MAX]
        ),
        "done_batch": lambda: script(r, "done_batch")(
            keys=[*base, counters[0], counters[2], hash_key, *([lock] if lock else [])],
            args=[exp, task_id, 1 if lock else 0],
        ),
        "mark_as_complete": lambda: script(r, "mark_as_complete")(
            keys=[*base, f"{Q}:completed", hash_key, counters[0], counters[2], lock],
            args=[task_id, exp, now + 60, b"m2", MAX, f"{Q}:done:{task_id}"],
        ),
        "retry": lambda: script(r, "retry")(
            keys=[hash_key, *base, f"{Q}:retry", *counters],
            args=[task_id, b"m2", now + 5, exp, 1, MAX, cutoff],
        ),
        "archive": lambda: script(r, "archive")(
            keys=[hash_key, *base, f"{Q}:archived", *counters],
            args=[task_id, b"m2", now, exp, MAX, cutoff, "", f"{Q}:done:{task_id}"],
        ),
        "requeue": lambda: script(r, "requeue")(
            keys=[*base, f"{Q}:pending", hash_key], args=[task_id]
        ),
    }


OUTCOMES = ["done", "done_batch", "mark_as_complete", "retry", "archive", "requeue"]


END_STATE = {
    "done": None,
    "done_batch": None,
    "mark_as_complete": b"completed",
    "retry": b"retry",
    "archive": b"archived",
    "requeue": b"pending",
}


@pytest.mark.parametrize("name", OUTCOMES)
def test_a_handler_outcome_for_a_task_whose_lease_entry_alone_vanished_is_written_whole(
    r: redis.Redis, name: str
) -> None:
    """Still in active, the task is this server's (the renewal would take the lease back): its
    outcome is written entirely, never half (asynq's scripts stopped after removing it from
    active, leaving the hash `active` and the lock held)."""
    lock = f"{Q}:unique:t:x"
    running(r, "a", lease=False, lock=lock)
    assert outcome_calls(r, "a", lock)[name]() in (1, [1])
    assert r.llen(f"{Q}:active") == 0 and r.zcard(f"{Q}:lease") == 0
    assert r.hget(f"{Q}:t:a", "state") == END_STATE[name]
    if name in ("done", "done_batch", "mark_as_complete"):
        assert not r.exists(lock) and r.get(f"{Q}:processed") == b"1"


@pytest.mark.parametrize("name", ["retry", "archive"])
def test_a_recovery_without_its_lease_writes_nothing(r: redis.Redis, name: str) -> None:
    running(r, "a", lease=False)
    before = {k: r.dump(k) for k in r.keys("*")}
    assert outcome_calls(r, "a", "", cutoff=int(time.time()))[name]() == 0
    assert {k: r.dump(k) for k in r.keys("*")} == before


# A success only deletes the hash, whatever it holds: no hash case for done and done_batch.
BROKEN_KEYS = [
    (name, key)
    for name in OUTCOMES
    for key in ("active", "lease", "t:a")
    if not (key == "t:a" and name in ("done", "done_batch"))
]


@pytest.mark.parametrize(("name", "key"), BROKEN_KEYS)
def test_an_outcome_with_a_key_of_the_wrong_type_writes_nothing(
    r: redis.Redis, name: str, key: str
) -> None:
    running(r, "a")
    r.delete(f"{Q}:{key}")
    r.set(f"{Q}:{key}", "not the right type")
    before = {k: r.dump(k) for k in r.keys("*")}
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        outcome_calls(r, "a", "")[name]()
    assert {k: r.dump(k) for k in r.keys("*")} == before


@pytest.mark.parametrize("name", OUTCOMES)
def test_an_outcome_for_a_task_not_in_active_writes_nothing(r: redis.Redis, name: str) -> None:
    running(r, "a")
    r.lrem(f"{Q}:active", 0, "a")  # a stray lease entry: the task is not active here
    before = {k: r.dump(k) for k in r.keys("*")}
    assert outcome_calls(r, "a", "")[name]() in (0, [0])
    assert {k: r.dump(k) for k in r.keys("*")} == before


DESTINATIONS = {
    "mark_as_complete": f"{Q}:completed",
    "retry": f"{Q}:retry",
    "archive": f"{Q}:archived",
    "requeue": f"{Q}:pending",
}


@pytest.mark.parametrize("name", DESTINATIONS)
def test_an_outcome_whose_destination_is_broken_writes_nothing(r: redis.Redis, name: str) -> None:
    """The destination is written first: a key of the wrong type fails the call at once, and the
    task stays active and leased (the recoverer can still find it), not lost between lists."""
    running(r, "a")
    r.set(DESTINATIONS[name], "not the right type")
    before = {k: r.dump(k) for k in r.keys("*")}
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        outcome_calls(r, "a", "")[name]()
    assert {k: r.dump(k) for k in r.keys("*")} == before


@pytest.mark.parametrize("name", ["done", "done_batch", "mark_as_complete", "retry", "archive"])
def test_a_broken_counter_does_not_strand_the_task(r: redis.Redis, name: str) -> None:
    """Counters are best effort: a non-integer counter key must not stop the transition."""
    lock = f"{Q}:unique:t:x"
    running(r, "a", lock=lock)
    r.set(f"{Q}:processed:{DAY}", "garbage")
    assert outcome_calls(r, "a", lock)[name]() in (1, [1])
    assert r.llen(f"{Q}:active") == 0 and r.zcard(f"{Q}:lease") == 0
    if name in ("done", "done_batch", "mark_as_complete"):
        assert not r.exists(lock), "the lock is released all the same"


@pytest.mark.parametrize("name", ["retry", "archive"])
def test_a_recovery_keeps_a_lease_renewed_since_it_was_listed(r: redis.Redis, name: str) -> None:
    running(r, "a")  # its lease ends in 30 s: renewed after the recoverer listed it as expired
    cutoff = int(time.time()) - 30
    before = {k: r.dump(k) for k in r.keys("*")}
    assert outcome_calls(r, "a", "", cutoff=cutoff)[name]() == 0
    assert {k: r.dump(k) for k in r.keys("*")} == before
    r.zadd(f"{Q}:lease", {"a": cutoff})  # still expired: recovered
    assert outcome_calls(r, "a", "", cutoff=cutoff)[name]() == 1


@pytest.mark.parametrize("name", ["done", "done_batch", "mark_as_complete"])
def test_a_success_releases_the_tasks_own_unique_lock(r: redis.Redis, name: str) -> None:
    lock = f"{Q}:unique:t:x"
    running(r, "a", lock=lock)
    assert outcome_calls(r, "a", lock)[name]() in (1, [1])
    assert not r.exists(lock)
    assert r.llen(f"{Q}:active") == 0 and r.zcard(f"{Q}:lease") == 0
    assert r.get(f"{Q}:processed") == b"1"


def test_a_success_keeps_a_lock_another_task_holds(r: redis.Redis) -> None:
    lock = f"{Q}:unique:t:x"
    running(r, "a")
    r.set(lock, "b")
    assert outcome_calls(r, "a", lock)["done"]() == 1
    assert r.get(lock) == b"b"


def test_requeue_makes_the_task_the_next_one_dequeued(r: redis.Redis) -> None:
    running(r, "a")
    r.lpush(f"{Q}:pending", "older", "newer")  # dequeue pops from the right: "older" is next
    assert outcome_calls(r, "a", "")["requeue"]() == 1
    assert r.rpop(f"{Q}:pending") == b"a", "the requeued task goes before everything waiting"
    assert r.hget(f"{Q}:t:a", "state") == b"pending"


# ---- lease renewal and recovery ----------------------------------------------------------


def extend(r: redis.Redis, until: int, *ids: str) -> list[list[bytes]]:
    return list(script(r, "extend_lease")(keys=[f"{Q}:lease", f"{Q}:active"], args=[until, *ids]))


def test_extend_lease_renews_every_task_given(r: redis.Redis) -> None:
    for i in ("a", "b", "c"):
        running(r, i)
    until = int(time.time()) + 300
    assert extend(r, until, "a", "b", "c") == [[], []]
    assert [r.zscore(f"{Q}:lease", i) for i in ("a", "b", "c")] == [until] * 3


def test_extend_lease_retakes_a_running_task_whose_entry_alone_vanished(r: redis.Redis) -> None:
    running(r, "a")
    running(r, "b", lease=False)  # still active here: nobody else has it
    until = int(time.time()) + 300
    assert extend(r, until, "a", "b", "gone") == [[b"gone"], [b"b"]]
    assert r.zscore(f"{Q}:lease", "b") == until
    assert r.zscore(f"{Q}:lease", "gone") is None, "a task that left active is not leased again"


def recover_scan(r: redis.Redis, cutoff: int, adopt_until: int) -> list[Any]:
    # As the recoverer calls it: the expired ids read first, their hashes named in KEYS.
    read = r.zrangebyscore(f"{Q}:lease", "-inf", cutoff)
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in read]
    keys = [f"{Q}:lease", f"{Q}:active", *(f"{Q}:t:{i}" for i in ids)]
    return list(script(r, "list_lease_expired")(keys=keys, args=[cutoff, adopt_until, *ids]))


def test_a_lease_renewed_after_the_recoverer_read_it_is_not_recovered(r: redis.Redis) -> None:
    now = int(time.time())
    running(r, "a")
    r.zadd(f"{Q}:lease", {"a": now - 60})  # expired, and read as such
    keys = [f"{Q}:lease", f"{Q}:active", f"{Q}:t:a", f"{Q}:t:gone"]
    r.zadd(f"{Q}:lease", {"a": now + 30}, xx=True)  # then renewed by its server
    scan = script(r, "list_lease_expired")
    assert list(scan(keys=keys, args=[now - 30, now + 10, "a", "gone"])) == [0, 0]
    assert r.zscore(f"{Q}:lease", "a") == now + 30 and r.exists(f"{Q}:t:a")
    with pytest.raises(redis.ResponseError, match="1 task keys for 2 ids"):
        scan(keys=keys[:3], args=[now - 30, now + 10, "a", "gone"])


def test_an_active_task_no_lease_covers_gets_one_and_is_recovered_when_it_ends(
    r: redis.Redis,
) -> None:
    now = int(time.time())
    running(r, "orphan", lease=False)
    running(r, "live")
    # The orphan is given a lease of its own (here 10 s), and is not recovered yet.
    assert recover_scan(r, now - 30, now + 10) == [1, 0]
    assert r.zscore(f"{Q}:lease", "orphan") == now + 10
    assert recover_scan(r, now - 30, now + 10) == [0, 0], "given once"
    # Once the cutoff (now - grace) passes that lease: recovered like any expired lease.
    assert recover_scan(r, now + 10, now + 50) == [0, 0, b"orphan", b"m"]


def test_an_adopted_task_that_a_live_server_renews_is_not_recovered(r: redis.Redis) -> None:
    """A Go server (ZADD XX every 5 s) or a ferroq one still running the task renews the entry
    the recoverer gave it, and keeps its task."""
    now = int(time.time())
    running(r, "a", lease=False)
    assert recover_scan(r, now - 30, now + 10) == [1, 0]
    r.zadd(f"{Q}:lease", {"a": now + 30}, xx=True)  # asynq's ExtendLease
    assert recover_scan(r, now + 10, now + 50) == [0, 0]
    assert r.zscore(f"{Q}:lease", "a") == now + 30


def test_expired_entries_of_tasks_that_cannot_run_are_dropped(r: redis.Redis) -> None:
    old = int(time.time()) - 100
    for i in ("ghost", "bare", "stray", "ok"):
        r.zadd(f"{Q}:lease", {i: old})
    r.lpush(f"{Q}:active", "ghost", "bare", "ok")  # "stray" is not active here
    r.hset(f"{Q}:t:bare", "state", "active")  # a hash without msg
    r.hset(f"{Q}:t:stray", mapping={"msg": b"s", "state": "retry"})
    r.hset(f"{Q}:t:ok", mapping={"msg": b"m", "state": "active"})
    now = old + 200
    assert recover_scan(r, now, now) == [0, 3, b"ok", b"m"]
    assert r.lrange(f"{Q}:active", 0, -1) == [b"ok"]
    assert r.zrange(f"{Q}:lease", 0, -1) == [b"ok"]
    assert not r.exists(f"{Q}:t:bare") and not r.exists(f"{Q}:t:ghost")
    assert r.hget(f"{Q}:t:stray", "state") == b"retry", "a task elsewhere is left alone"


# ---- dequeue and forward ------------------------------------------------------------------


def dequeue(
    r: redis.Redis,
    queues: list[str],
    n: Any = 10,
    *,
    ahead: int = 0,
    named: tuple[str, ...] = (),
    expiry: Any = None,
) -> list[Any]:
    """dequeue.lua over ``queues``; with a read-ahead, dequeue_declared.lua naming the task
    hashes ``named``."""
    keys: list[str] = []
    for q in queues:
        keys += [f"asynq:{{{q}}}:{k}" for k in ("pending", "paused", "active", "lease")]
    keys += named
    args: list[Any] = [int(time.time()) + 30 if expiry is None else expiry, n]
    if ahead:
        args.append(ahead)
    args += [f"asynq:{{{q}}}:t:" for q in queues]
    return list(script(r, "dequeue_declared" if ahead else "dequeue")(keys=keys, args=args))


def layout(r: redis.Redis, q: str) -> dict[str, Any]:
    """Every key of queue ``q``, its name without the queue, with what it holds."""
    out: dict[str, Any] = {}
    for key in r.scan_iter(f"asynq:{{{q}}}:*"):
        name = key.decode().split("}:", 1)[1]
        kind = r.type(key)
        if kind == b"list":
            out[name] = r.lrange(key, 0, -1)
        elif kind == b"zset":
            out[name] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[name] = r.hgetall(key)
    return out


@pytest.mark.parametrize("declared", [False, True], ids=["default", "declared"])
def test_a_batch_dequeue_leaves_what_asynqs_moves_one_by_one_leave(
    r: redis.Redis, declared: bool
) -> None:
    """The dequeue takes its tasks off pending and onto active and the lease set in one command
    each; the keys must end as asynq's dequeue leaves them, one RPOPLPUSH, HSET, HDEL and ZADD
    per task (here, done by hand on a twin queue)."""
    ids = [f"t{i}" for i in range(7)]
    for q in ("q", "twin"):
        for i in ids:
            r.hset(
                f"asynq:{{{q}}}:t:{i}", mapping={"msg": i, "state": "pending", "pending_since": 1}
            )
            r.lpush(f"asynq:{{{q}}}:pending", i)
        r.lpush(f"asynq:{{{q}}}:active", "running")  # a task leased before
        r.zadd(f"asynq:{{{q}}}:lease", {"running": 5})
    named = tuple(f"asynq:{{q}}:t:{i}" for i in ids) if declared else ()
    out = dequeue(r, ["q"], 5, ahead=2 if declared else 0, named=named)
    expiry = r.zscore("asynq:{q}:lease", "t0")
    assert expiry is not None and expiry > time.time()
    taken = [b"t0", b"t1", b"t2", b"t3", b"t4"]  # FIFO: the oldest first
    assert out[3::2] == taken and out[4::2] == taken
    twin = "asynq:{twin}"
    for tid in taken:
        assert r.rpoplpush(f"{twin}:pending", f"{twin}:active") == tid
        r.hset(f"{twin}:t:{tid.decode()}", "state", "active")
        r.hdel(f"{twin}:t:{tid.decode()}", "pending_since")
        r.zadd(f"{twin}:lease", {tid: expiry})
    assert layout(r, "q") == layout(r, "twin")
    assert r.lrange("asynq:{q}:active", 0, -1) == [*reversed(taken), b"running"]


def pending_tasks(r: redis.Redis, q: str, n: int) -> list[str]:
    """``n`` pending tasks on queue ``q``, the first enqueued first in the list."""
    ids = [f"t{i}" for i in range(n)]
    with r.pipeline(transaction=False) as p:
        for i in ids:
            p.hset(f"asynq:{{{q}}}:t:{i}", mapping={"msg": i, "state": "pending"})
            p.lpush(f"asynq:{{{q}}}:pending", i)
        p.execute()
    return ids


@pytest.mark.parametrize("declared", [False, True], ids=["default", "declared"])
@pytest.mark.parametrize(
    ("expiry", "n"), [("soon", 5), (None, 0), (None, "many")], ids=["expiry", "zero", "count"]
)
def test_dequeue_refuses_bad_arguments_before_it_writes(
    r: redis.Redis, declared: bool, expiry: Any, n: Any
) -> None:
    # The batch leaves pending before it reaches active: a refusal after that would lose it.
    ids = pending_tasks(r, "q", 3)
    before = layout(r, "q")
    named = tuple(f"asynq:{{q}}:t:{i}" for i in ids) if declared else ()
    with pytest.raises(redis.ResponseError, match="lease expiry"):
        dequeue(r, ["q"], n, ahead=4 if declared else 0, named=named, expiry=expiry)
    assert layout(r, "q") == before


def test_one_dequeue_call_takes_at_most_1000_tasks(r: redis.Redis) -> None:
    # Their ids go to one LPUSH and one ZADD, whose arguments Lua's unpack bounds.
    pending_tasks(r, "q", 1500)
    out = dequeue(r, ["q"], 1500)
    assert len(out[3:]) == 2 * 1000
    assert r.llen("asynq:{q}:pending") == 500 and r.llen("asynq:{q}:active") == 1000
    assert r.zcard("asynq:{q}:lease") == 1000
    assert out[3] == b"t0" and out[-2] == b"t999", "the oldest thousand, oldest first"


def test_done_batch_refuses_more_than_1000_tasks(r: redis.Redis) -> None:
    ids = [f"t{i}" for i in range(1001)]
    r.lpush("asynq:{q}:active", *ids)
    keys = ["asynq:{q}:active", "asynq:{q}:lease", "asynq:{q}:processed:d", "asynq:{q}:processed"]
    keys += [f"asynq:{{q}}:t:{i}" for i in ids]
    args: list[Any] = [int(time.time()) + 60]
    for i in ids:
        args += [i, 0]
    with pytest.raises(redis.ResponseError, match="1001 tasks"):
        script(r, "done_batch")(keys=keys, args=args)
    assert r.llen("asynq:{q}:active") == 1001, "nothing written"


@pytest.mark.parametrize("declared", [False, True], ids=["default", "declared"])
def test_dequeue_drops_ghost_ids_without_writing_a_hash(r: redis.Redis, declared: bool) -> None:
    r.lpush("asynq:{q}:pending", "real", "bare", "ghost")  # "real" is popped first
    r.hset("asynq:{q}:t:real", mapping={"msg": b"m", "state": "pending"})
    r.hset("asynq:{q}:t:bare", "state", "pending")  # a hash without msg
    named = tuple(f"asynq:{{q}}:t:{i}" for i in ("real", "bare", "ghost")) if declared else ()
    out = dequeue(r, ["q"], ahead=4 if declared else 0, named=named)
    assert out == [1, [], [1, []] if declared else [], b"real", b"m", b"bare", None, b"ghost", None]
    assert not r.exists("asynq:{q}:t:ghost"), "no stray hash for a ghost"
    assert not r.exists("asynq:{q}:t:bare")
    assert r.lrange("asynq:{q}:active", 0, -1) == [b"real"]
    assert r.zrange("asynq:{q}:lease", 0, -1) == [b"real"]
    assert r.llen("asynq:{q}:pending") == 0


@pytest.mark.parametrize("declared", [False, True], ids=["default", "declared"])
@pytest.mark.parametrize("key", ["pending", "active", "lease"])
def test_dequeue_skips_a_broken_queue_and_serves_the_next(
    r: redis.Redis, key: str, declared: bool
) -> None:
    r.lpush("asynq:{bad}:pending", "b1")
    r.hset("asynq:{bad}:t:b1", mapping={"msg": b"x", "state": "pending"})
    r.delete(f"asynq:{{bad}}:{key}")
    r.set(f"asynq:{{bad}}:{key}", "not the right type")
    r.lpush("asynq:{ok}:pending", "o1")
    r.hset("asynq:{ok}:t:o1", mapping={"msg": b"m", "state": "pending"})
    named = ("asynq:{bad}:t:b1", "asynq:{ok}:t:o1") if declared else ()
    served, broken, _, *tasks = dequeue(r, ["bad", "ok"], ahead=4 if declared else 0, named=named)
    assert (served, tasks) == (2, [b"o1", b"m"])
    assert (
        broken[0] == 1 and broken[1].startswith(f"{key}: ".encode()) and b"WRONGTYPE" in broken[1]
    )
    if key != "pending":
        # The broken queue's task was put back where it was, untouched.
        assert r.lrange("asynq:{bad}:pending", 0, -1) == [b"b1"]
        assert r.hget("asynq:{bad}:t:b1", "state") == b"pending"


def forward(
    r: redis.Redis, src: str, *, groups: tuple[str, ...] = (), ns: int | None = None
) -> list[Any]:
    """forward.lua as the forwarder calls it: over the due IDs it read, naming ``groups``."""
    now = int(time.time())
    due = cast(list[bytes], r.zrangebyscore(f"{Q}:{src}", "-inf", now, start=0, num=100))
    ids = [i.decode() for i in due]
    return cast(
        list[Any],
        script(r, "forward")(
            keys=[f"{Q}:{src}", f"{Q}:pending", f"{Q}:groups",
                  *(f"{Q}:t:{i}" for i in ids), *(f"{Q}:g:{g}" for g in groups)],
            args=[now, ns or time.time_ns(), f"{Q}:g:", *ids],
        ),
    )  # fmt: skip


def test_forward_drops_a_ghost_id_without_writing_a_hash(r: redis.Redis) -> None:
    now = int(time.time())
    r.zadd("asynq:{q}:scheduled", {"ghost": now - 5, "bare": now - 5, "real": now - 5})
    r.hset("asynq:{q}:t:bare", "state", "scheduled")
    r.hset("asynq:{q}:t:real", mapping={"msg": b"m", "state": "scheduled"})
    out = forward(r, "scheduled")
    assert out[0] == 3
    assert r.lrange("asynq:{q}:pending", 0, -1) == [b"real"]
    assert r.zcard("asynq:{q}:scheduled") == 0
    assert not r.exists("asynq:{q}:t:ghost") and not r.exists("asynq:{q}:t:bare")


def test_forward_never_moves_a_task_before_its_second(r: redis.Redis) -> None:
    now = int(time.time())
    r.zadd("asynq:{q}:scheduled", {"due": now, "later": now + 1, "float": now + 0.5})
    for i in ("due", "later", "float"):
        r.hset(f"asynq:{{q}}:t:{i}", mapping={"msg": b"m", "state": "scheduled"})
    out = forward(r, "scheduled")
    assert out[0] == 1 and r.lrange("asynq:{q}:pending", 0, -1) == [b"due"]


def test_forward_leaves_an_id_that_moved_or_was_rescheduled_since_it_was_read(
    r: redis.Redis,
) -> None:
    now = int(time.time())
    r.zadd(f"{Q}:scheduled", {"later": now + 60})
    for i in ("gone", "later"):
        r.hset(f"{Q}:t:{i}", mapping={"msg": b"m", "state": "scheduled"})
    out = script(r, "forward")(
        keys=[f"{Q}:scheduled", f"{Q}:pending", f"{Q}:groups", f"{Q}:t:gone", f"{Q}:t:later"],
        args=[now, time.time_ns(), f"{Q}:g:", "gone", "later"],
    )
    assert out == [0, str(now + 60).encode(), 0]
    assert not r.exists(f"{Q}:pending") and r.zscore(f"{Q}:scheduled", "later") == now + 60
    assert r.hget(f"{Q}:t:gone", "state") == b"scheduled"


def test_forward_refuses_ids_without_their_task_keys(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="forward: 1 keys for 2 ids"):
        script(r, "forward")(
            keys=[f"{Q}:scheduled", f"{Q}:pending", f"{Q}:groups", f"{Q}:t:a"],
            args=[int(time.time()), time.time_ns(), f"{Q}:g:", "a", "b"],
        )


def test_forward_leaves_a_grouped_task_until_its_group_key_is_named(r: redis.Redis) -> None:
    now = int(time.time())
    r.zadd(f"{Q}:retry", {"g1": now - 1, "g2": now - 1, "g3": now - 1, "p": now - 1})
    for i, g in (("g1", "a"), ("g2", "b"), ("g3", "a"), ("p", "")):
        r.hset(f"{Q}:t:{i}", mapping={"msg": b"m", "state": "retry", "group": g})
    out = forward(r, "retry")
    assert out[0] == 1 and sorted(out[3:]) == [b"a", b"b"], "each missing group once"
    assert r.lrange(f"{Q}:pending", 0, -1) == [b"p"]
    assert r.zcard(f"{Q}:retry") == 3 and not r.exists(f"{Q}:g:a")
    assert forward(r, "retry", groups=("a",)) == [2, str(now - 1).encode(), 0, b"b"]
    assert forward(r, "retry", groups=("b",)) == [1, None, 0]
    assert r.zrange(f"{Q}:g:a", 0, -1) == [b"g1", b"g3"] and r.zrange(f"{Q}:g:b", 0, -1) == [b"g2"]
    assert r.smembers(f"{Q}:groups") == {b"a", b"b"}, "where asynq's aggregator finds them"


# ---- every write of each transition -------------------------------------------------------


def counters(r: redis.Redis) -> dict[str, tuple[bytes | None, int]]:
    """Each counter's value and TTL (-2: no key, -1: no expiry)."""
    names = [f"processed:{DAY}", f"failed:{DAY}", "processed", "failed"]
    return {n: (cast(bytes | None, r.get(f"{Q}:{n}")), r.ttl(f"{Q}:{n}")) for n in names}


def day_ttl_ok(ttl: int) -> bool:
    return 89 * 86400 < ttl <= 90 * 86400


def test_retry_writes_every_part_of_the_transition(r: redis.Redis) -> None:
    running(r, "a")
    now = int(time.time())
    assert outcome_calls(r, "a", "")["retry"]() == 1
    assert r.zscore(f"{Q}:retry", "a") == now + 5, "at its retry time"
    assert r.hgetall(f"{Q}:t:a") == {b"msg": b"m2", b"state": b"retry"}
    c = counters(r)
    assert [c[k][0] for k in c] == [b"1", b"1", b"1", b"1"]
    assert day_ttl_ok(c[f"processed:{DAY}"][1]) and day_ttl_ok(c[f"failed:{DAY}"][1])
    assert c["processed"][1] == -1, "totals never expire"


def test_a_retry_that_is_no_failure_counts_nothing(r: redis.Redis) -> None:
    running(r, "a")
    now = int(time.time())
    call = script(r, "retry")
    keys = [f"{Q}:t:a", f"{Q}:active", f"{Q}:lease", f"{Q}:retry", f"{Q}:processed:{DAY}",
            f"{Q}:failed:{DAY}", f"{Q}:processed", f"{Q}:failed"]  # fmt: skip
    assert call(keys=keys, args=["a", b"m2", now + 5, now + 86400 * 90, 0, MAX, MAX]) == 1
    assert all(v is None for v, _ in counters(r).values())


def test_the_totals_wrap_at_the_int64_limit(r: redis.Redis) -> None:
    for name in ("done", "mark_as_complete", "retry", "archive"):
        r.flushdb()
        running(r, "a")
        r.set(f"{Q}:processed", MAX)
        r.set(f"{Q}:failed", MAX)
        assert outcome_calls(r, "a", "")[name]() == 1
        assert r.get(f"{Q}:processed") == b"1", name
        if name in ("retry", "archive"):
            assert r.get(f"{Q}:failed") == b"1", name


def trim_archive(
    r: redis.Redis, *, cutoff: int, cap: int, just: tuple[str, ...] = (), named: int | None = None
) -> list[int]:
    """trim_archive.lua over the ``named`` oldest archived entries (all by default)."""
    oldest = cast(list[bytes], r.zrange(f"{Q}:archived", 0, -1 if named is None else named - 1))
    ids = [i.decode() for i in oldest]
    return cast(
        list[int],
        script(r, "trim_archive")(
            keys=[f"{Q}:archived", *(f"{Q}:t:{i}" for i in ids)],
            args=[cutoff, cap, f"{Q}:t:", *just],
        ),
    )


def test_archive_writes_every_part(r: redis.Redis) -> None:
    now = int(time.time())
    recent = now - 10
    r.zadd(f"{Q}:archived", {"recent": recent})
    r.hset(f"{Q}:t:recent", "msg", b"r")
    running(r, "a")
    assert outcome_calls(r, "a", "")["archive"]() == 1
    # The script call reads the clock itself (outcome_calls): it may have entered the next second.
    archived = cast(list[tuple[bytes, float]], r.zrange(f"{Q}:archived", 0, -1, withscores=True))
    assert [m for m, _ in archived] == [b"recent", b"a"] and archived[0][1] == recent
    assert now <= archived[1][1] <= int(time.time()), "archived at the script's now"
    assert r.hgetall(f"{Q}:t:a") == {b"msg": b"m2", b"state": b"archived"}
    c = counters(r)
    assert [c[k][0] for k in c] == [b"1", b"1", b"1", b"1"]
    assert day_ttl_ok(c[f"processed:{DAY}"][1]) and day_ttl_ok(c[f"failed:{DAY}"][1])
    running(r, "b")
    call = script(r, "archive")
    keys = [f"{Q}:t:b", f"{Q}:active", f"{Q}:lease", f"{Q}:archived", f"{Q}:processed:{DAY}",
            f"{Q}:failed:{DAY}", f"{Q}:processed", f"{Q}:failed"]  # fmt: skip
    args = ["b", b"mb", now, now + 86400, MAX, MAX, "why", f"{Q}:done:b"]
    assert call(keys=keys, args=args) == 1
    assert r.zcard(f"{Q}:archived") == 3, "archive.lua trims nothing: trim_archive.lua does"
    assert r.hget(f"{Q}:t:b", "error") == b"why", "an undecodable message keeps its reason"


def test_trim_archive_deletes_by_age_then_by_size_with_the_hashes(r: redis.Redis) -> None:
    now = int(time.time())
    r.zadd(f"{Q}:archived", {"old": now - 2 * 86400, "recent": now - 10, "a": now, "b": now})
    for i in ("old", "recent", "a", "b"):
        r.hset(f"{Q}:t:{i}", "msg", i)
    assert trim_archive(r, cutoff=now - 86400, cap=10) == [1, 0]
    assert not r.exists(f"{Q}:t:old"), "trimmed by age, with its hash"
    assert trim_archive(r, cutoff=now - 86400, cap=1, just=("b",)) == [2, 0]
    assert r.zrange(f"{Q}:archived", 0, -1) == [b"b"]
    assert not r.exists(f"{Q}:t:recent") and not r.exists(f"{Q}:t:a"), "trimmed with their hashes"
    assert trim_archive(r, cutoff=now - 86400, cap=1, just=("b",)) == [0, 0], "nothing over"


def test_trim_archive_stops_at_the_first_entry_it_was_not_given(r: redis.Redis) -> None:
    now = int(time.time())
    r.zadd(f"{Q}:archived", {f"t{i}": now - 100 + i for i in range(5)})
    for i in range(5):
        r.hset(f"{Q}:t:t{i}", "msg", b"m")
    # Three must go by size; the call names only the two oldest: the third waits, never a newer.
    assert trim_archive(r, cutoff=now - 86400, cap=2, named=2) == [2, 1]
    assert r.zrange(f"{Q}:archived", 0, -1) == [b"t2", b"t3", b"t4"]
    assert trim_archive(r, cutoff=now - 86400, cap=2) == [1, 0]
    # By age too: the oldest not named stops it before any younger one goes.
    r.zadd(f"{Q}:archived", {"x": now - 200, "y": now - 150})
    r.hset(f"{Q}:t:x", "msg", b"m")
    ids = ["y"]  # x, the oldest, is not named
    out = script(r, "trim_archive")(
        keys=[f"{Q}:archived", *(f"{Q}:t:{i}" for i in ids)], args=[now - 120, 0, f"{Q}:t:"]
    )
    assert out == [0, 1] and r.zcard(f"{Q}:archived") == 4 and r.exists(f"{Q}:t:x")
    r.set(f"{Q}:archived", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        trim_archive(r, cutoff=now, cap=1, named=0)


def test_done_and_mark_as_complete_write_every_part(r: redis.Redis) -> None:
    running(r, "a")
    assert outcome_calls(r, "a", "")["done"]() == 1
    assert not r.exists(f"{Q}:t:a")
    c = counters(r)
    assert (c[f"processed:{DAY}"][0], c["processed"][0], c[f"failed:{DAY}"][0]) == (
        b"1",
        b"1",
        None,
    )
    assert day_ttl_ok(c[f"processed:{DAY}"][1])
    r.flushdb()
    running(r, "a")
    now = int(time.time())
    assert outcome_calls(r, "a", "")["mark_as_complete"]() == 1
    assert r.zscore(f"{Q}:completed", "a") == now + 60
    assert r.hgetall(f"{Q}:t:a") == {b"msg": b"m2", b"state": b"completed"}
    assert day_ttl_ok(counters(r)[f"processed:{DAY}"][1])


def test_requeue_writes_every_part(r: redis.Redis) -> None:
    running(r, "a")
    assert outcome_calls(r, "a", "")["requeue"]() == 1
    assert r.zscore(f"{Q}:lease", "a") is None and r.llen(f"{Q}:active") == 0
    assert r.lrange(f"{Q}:pending", 0, -1) == [b"a"]
    assert r.hget(f"{Q}:t:a", "state") == b"pending"


def test_a_declared_keys_dequeue_leases_only_the_tasks_it_names(r: redis.Redis) -> None:
    r.rpush("asynq:{q}:pending", "t4", "t3", "t2", "t1", "ghost")  # "ghost" pops first
    for i in ("t1", "t2", "t3", "t4"):
        r.hset(f"asynq:{{q}}:t:{i}", mapping={"msg": i, "state": "pending"})
    r.lpush("asynq:{low}:pending", "l1")
    r.hset("asynq:{low}:t:l1", mapping={"msg": b"l", "state": "pending"})
    # Told of nothing: it leases nothing, learns the tail, and never falls through to "low".
    out = dequeue(r, ["q", "low"], 2, ahead=3)
    assert out == [0, [], [1, [b"t2", b"t1", b"ghost"]]]
    assert r.llen("asynq:{q}:pending") == 5 and not r.exists("asynq:{q}:active")
    # Told of the tail: it takes those (the ghost dropped, no hash written), up to n.
    told = ("asynq:{q}:t:ghost", "asynq:{q}:t:t1", "asynq:{q}:t:t2")
    out = dequeue(r, ["q", "low"], 2, ahead=3, named=told)
    assert out == [1, [], [1, [b"t4", b"t3", b"t2"]], b"ghost", None, b"t1", b"t1"]
    assert not r.exists("asynq:{q}:t:ghost") and r.hget("asynq:{q}:t:t1", "state") == b"active"
    # The tail moved on to t2, named: taken; t3 is not, and waits.
    out = dequeue(r, ["q", "low"], 5, ahead=3, named=told)
    assert out == [1, [], [1, [b"t4", b"t3"]], b"t2", b"t2"]
    assert r.lrange("asynq:{q}:active", 0, -1) == [b"t2", b"t1"]
    # An empty or paused queue is passed over as before.
    r.set("asynq:{q}:paused", 1)
    out = dequeue(r, ["q", "low"], 5, ahead=3, named=("asynq:{low}:t:l1",))
    assert out == [2, [], [2, []], b"l1", b"l"]


def test_dequeue_writes_every_part_of_a_lease(r: redis.Redis) -> None:
    r.lpush("asynq:{q}:pending", "a")
    r.hset("asynq:{q}:t:a", mapping={"msg": b"m", "state": "pending", "pending_since": 1})
    until = int(time.time()) + 30
    keys = [f"asynq:{{q}}:{k}" for k in ("pending", "paused", "active", "lease")]
    got = script(r, "dequeue")(keys=keys, args=[until, 5, "asynq:{q}:t:"])
    assert got == [1, [], [], b"a", b"m"]
    assert r.zscore("asynq:{q}:lease", "a") == until
    assert r.hgetall("asynq:{q}:t:a") == {b"msg": b"m", b"state": b"active"}


def test_a_dequeue_rollback_puts_the_task_back_at_the_front(r: redis.Redis) -> None:
    """With a broken lease set the popped task goes back where it was: the next to run."""
    r.lpush("asynq:{q}:pending", "first", "second")  # "first" is at the dequeue end
    r.lpush("asynq:{q}:active", "running")
    for i in ("first", "second"):
        r.hset(f"asynq:{{q}}:t:{i}", mapping={"msg": b"m", "state": "pending"})
    r.set("asynq:{q}:lease", "broken")
    keys = [f"asynq:{{q}}:{k}" for k in ("pending", "paused", "active", "lease")]
    served, broken, *_ = script(r, "dequeue")(keys=keys, args=[1, 5, "asynq:{q}:t:"])
    assert served == 0 and broken[0] == 1
    assert r.lrange("asynq:{q}:pending", 0, -1) == [b"second", b"first"]
    assert r.lrange("asynq:{q}:active", 0, -1) == [b"running"], "the active list is as it was"
    r.delete("asynq:{q}:lease", "asynq:{q}:pending")
    r.lpush("asynq:{q}:pending", "x")
    r.hset("asynq:{q}:t:x", mapping={"msg": b"m", "state": "pending"})
    r.set("asynq:{q}:active", "broken")
    served, broken, *_ = script(r, "dequeue")(keys=keys, args=[1, 5, "asynq:{q}:t:"])
    assert served == 0 and r.lrange("asynq:{q}:pending", 0, -1) == [b"x"]


def test_forward_counts_the_tasks_whose_group_it_could_not_list(r: redis.Redis) -> None:
    """A groups key of another type does not stop a grouped task going back into its group;
    the reply counts it, for the forwarder to log."""
    now = int(time.time())
    r.set(f"{Q}:groups", "not a set")
    r.zadd(f"{Q}:retry", {"g": now - 1})
    r.hset(f"{Q}:t:g", mapping={"msg": b"m", "state": "retry", "group": "a"})
    assert forward(r, "retry", groups=("a",)) == [1, None, 1]
    assert r.zrange(f"{Q}:g:a", 0, -1) == [b"g"] and r.hget(f"{Q}:t:g", "state") == b"aggregating"
    assert r.get(f"{Q}:groups") == b"not a set"


def test_forward_writes_pending_and_group_transitions(r: redis.Redis) -> None:
    now = int(time.time())
    r.lpush("asynq:{q}:pending", "waiting")
    r.zadd("asynq:{q}:retry", {"p": now - 1, "g": now - 1})
    r.hset("asynq:{q}:t:p", mapping={"msg": b"m", "state": "retry"})
    r.hset("asynq:{q}:t:g", mapping={"msg": b"m", "state": "retry", "group": "g1"})
    ns = time.time_ns()
    assert forward(r, "retry", ns=ns)[3:] == [b"g1"]
    out = forward(r, "retry", groups=("g1",), ns=ns)
    assert out == [1, None, 0]
    assert r.lrange("asynq:{q}:pending", 0, -1) == [b"p", b"waiting"], "behind what waits"
    assert r.hgetall("asynq:{q}:t:p") == {b"msg": b"m", b"state": b"pending",
                                          b"pending_since": str(ns).encode()}  # fmt: skip
    assert r.zscore("asynq:{q}:g:g1", "g") == now
    assert r.hget("asynq:{q}:t:g", "state") == b"aggregating"
    assert r.zcard("asynq:{q}:retry") == 0


def test_task_ends_are_announced_on_the_task_channel_with_the_result_and_exception(
    r: redis.Redis,
) -> None:
    """What the waiter relies on: a notice per kept end, the result and exception written."""
    ps = r.pubsub()  # type: ignore[no-untyped-call]
    ps.psubscribe(f"{Q}:done:*")
    ps.get_message(timeout=1)  # the subscription's confirmation
    now = int(time.time())
    exp = now + 86400
    counters_ = [f"{Q}:processed:{DAY}", f"{Q}:failed:{DAY}", f"{Q}:processed", f"{Q}:failed"]
    base = [f"{Q}:active", f"{Q}:lease"]
    running(r, "c")
    complete = script(r, "mark_as_complete")
    keys = [*base, f"{Q}:completed", f"{Q}:t:c", counters_[0], counters_[2]]
    assert complete(keys=keys, args=["c", exp, now + 60, b"m2", MAX, f"{Q}:done:c", b"42"]) == 1
    assert r.hget(f"{Q}:t:c", "result") == b"42", "the result is written with the completion"
    running(r, "k")
    keys = [*base, f"{Q}:completed", f"{Q}:t:k", counters_[0], counters_[2]]
    r.hset(f"{Q}:t:k", "result", b"written by the handler")
    assert complete(keys=keys, args=["k", exp, now + 60, b"m2", MAX, f"{Q}:done:k"]) == 1
    assert r.hget(f"{Q}:t:k", "result") == b"written by the handler", "kept without ARGV[7]"
    running(r, "a")
    archive = script(r, "archive")
    keys = [f"{Q}:t:a", *base, f"{Q}:archived", *counters_]
    args = ["a", b"m2", now, exp, MAX, MAX, "", f"{Q}:done:a", b'{"type": "builtins.ValueError"}']
    assert archive(keys=keys, args=args) == 1
    assert r.hget(f"{Q}:t:a", "exception") == b'{"type": "builtins.ValueError"}'
    assert not r.hexists(f"{Q}:t:a", "error"), "an empty reason writes no error field"
    running(r, "v")
    keys = [*base, f"{Q}:t:v", counters_[0], counters_[2]]
    assert script(r, "done")(keys=keys, args=["v", exp, MAX, f"{Q}:done:v"]) == 1
    running(r, "p")
    assert script(r, "done")(keys=[*keys[:2], f"{Q}:t:p", *keys[3:]], args=["p", exp, MAX]) == 1
    got = []
    while (m := ps.get_message(timeout=1)) is not None:
        if m["type"] == "pmessage":
            got.append((m["channel"].decode(), m["data"]))
    assert got == [
        (f"{Q}:done:c", b"completed"),
        (f"{Q}:done:k", b"completed"),
        (f"{Q}:done:a", b"archived"),
        (f"{Q}:done:v", b"deleted"),
    ], "done without a channel (no retention) announces nothing"
    ps.close()


def test_write_result_writes_one_field_and_never_makes_a_stray_hash(r: redis.Redis) -> None:
    write = script(r, "write_result")
    assert write(keys=[f"{Q}:t:gone"], args=[b"x", "result"]) == -1
    assert not r.exists(f"{Q}:t:gone")
    running(r, "a")
    assert write(keys=[f"{Q}:t:a"], args=[b'{"done": 1}', "progress"]) == 11
    assert write(keys=[f"{Q}:t:a"], args=[b"ok", "result"]) == 2
    assert r.hmget(f"{Q}:t:a", "progress", "result") == [b'{"done": 1}', b"ok"]


@pytest.mark.parametrize(
    ("cap", "tied", "new", "kept"),
    [
        # At most cap = 2 kept: the two oldest go, and no more.
        (2, False, "n", [b"o3", b"n"]),
        # Older entries: the task just archived, the newest, is kept even by a cap of 1.
        (1, False, "n", [b"n"]),
        # The new task tied with the others, sorting first by ID: still the one kept.
        (1, True, "a", [b"a"]),
    ],
)
def test_the_archive_trim_by_size_stops_at_the_cap(
    r: redis.Redis, cap: int, tied: bool, new: str, kept: list[bytes]
) -> None:
    now = int(time.time())
    for i, old in enumerate((b"o1", b"o2", b"o3"), 1):
        r.zadd(f"{Q}:archived", {old: now if tied else now - 100 + i})
        r.hset(f"{Q}:t:{old.decode()}", "msg", old)
    running(r, new)
    keys = [f"{Q}:t:{new}", f"{Q}:active", f"{Q}:lease", f"{Q}:archived", f"{Q}:processed:{DAY}",
            f"{Q}:failed:{DAY}", f"{Q}:processed", f"{Q}:failed"]  # fmt: skip
    args = [new, b"m", now, now + 86400, MAX, MAX, "", f"{Q}:done:{new}"]
    assert script(r, "archive")(keys=keys, args=args) == 1
    trim_archive(r, cutoff=now - 86400, cap=cap, just=(new,))
    assert r.zrange(f"{Q}:archived", 0, -1) == kept
    gone = {b"o1", b"o2", b"o3", new.encode()} - set(kept)
    assert not any(r.exists(f"{Q}:t:{g.decode()}") for g in gone), "trimmed with their hashes"
