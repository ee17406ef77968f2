"""Server behaviour against real Redis: every outcome and background component, observed with
redis-py and the independent protobuf reader in ``wire.py``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import timedelta
from typing import cast

import pytest
import redis

import wire
from ferroq import (
    Client,
    RevokeTask,
    SkipRetry,
    Task,
)
from server_helpers import (
    Holder,
    MakeServer,
    Unprintable,
    _listening,
    counter,
    empty_active,
    msg,
    mux_of,
    state,
    today,
    worker,
)
from util import wait_until


def test_success_deletes_the_task_and_counts_it(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    seen: list[Task] = []
    info = client.enqueue(Task("t", b"p", headers={"h": "v"}), max_retry=3)
    make_server().start(mux_of({"t": seen.append}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    wait_until(lambda: empty_active(r))
    assert not r.exists(f"asynq:{{default}}:t:{info.id}")
    assert counter(r, f"asynq:{{default}}:processed:{today()}") == 1
    ttl = r.ttl(f"asynq:{{default}}:processed:{today()}")
    assert 89 * 86400 < ttl <= 90 * 86400
    assert not r.exists("asynq:{default}:failed")
    (t,) = seen
    assert (t.id, t.queue, t.type, t.payload, t.headers) == (
        info.id,
        "default",
        "t",
        b"p",
        {"h": "v"},
    )
    assert (t.retry_count, t.max_retry) == (0, 3)
    assert t.deadline is not None and t.deadline.timestamp() == pytest.approx(
        time.time() + 1800, abs=5
    )


def test_retention_keeps_a_completed_task_with_its_result(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def handler(task: Task) -> None:
        assert task.write_result(b"answer") == 6

    info = client.enqueue(Task("t"), retention=timedelta(hours=1), unique=60)
    before = int(time.time())
    make_server().start(mux_of({"t": handler}))
    wait_until(lambda: state(r, info.id) == "completed")
    m = msg(r, info.id)
    assert before <= m["completed_at"] <= int(time.time())
    score = r.zscore("asynq:{default}:completed", info.id)
    assert score == m["completed_at"] + 3600
    assert r.hget(f"asynq:{{default}}:t:{info.id}", "result") == b"answer"
    assert empty_active(r)
    assert not r.exists("asynq:{default}:unique:t:"), "success releases the unique lock"
    assert counter(r, "asynq:{default}:processed") == 1


def test_janitor_deletes_expired_completed_tasks(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("t"), retention=1)
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "completed")
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"), timeout=10)
    assert r.zcard("asynq:{default}:completed") == 0


def test_error_goes_to_retry_with_asynq_fields(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    errors: list[tuple[str, str]] = []

    def boom(task: Task) -> None:
        raise ValueError("bad input")

    info = client.enqueue(Task("t"), max_retry=5, unique=300)
    srv = make_server(
        retry_delay=lambda n, e, t: 100, error_handler=lambda t, e: errors.append((t.type, str(e)))
    )
    srv.start(mux_of({"t": boom}))
    wait_until(lambda: state(r, info.id) == "retry")
    now = time.time()
    m = msg(r, info.id)
    assert m["retried"] == 1
    assert m["error_msg"] == "ValueError: bad input"
    assert now - 5 <= m["last_failed_at"] <= now
    score = r.zscore("asynq:{default}:retry", info.id)
    assert score is not None and score == pytest.approx(now + 100, abs=3)
    assert empty_active(r)
    assert counter(r, "asynq:{default}:failed") == 1
    assert counter(r, f"asynq:{{default}}:failed:{today()}") == 1
    assert counter(r, "asynq:{default}:processed") == 1
    assert errors == [("t", "bad input")]
    assert r.get("asynq:{default}:unique:t:") == info.id.encode(), "retry keeps the lock"


def test_last_retry_archives(client: Client, r: redis.Redis, make_server: MakeServer) -> None:
    def boom(task: Task) -> None:
        raise RuntimeError("nope")

    info = client.enqueue(Task("t"), max_retry=0)
    make_server().start(mux_of({"t": boom}))
    wait_until(lambda: state(r, info.id) == "archived")
    m = msg(r, info.id)
    assert (m["retried"], m["error_msg"]) == (0, "RuntimeError: nope")
    assert r.zscore("asynq:{default}:archived", info.id) == pytest.approx(time.time(), abs=5)
    assert counter(r, "asynq:{default}:failed") == 1
    assert empty_active(r)


def test_skip_retry_archives_at_once(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def skip(task: Task) -> None:
        raise SkipRetry("malformed input")

    info = client.enqueue(Task("t"), max_retry=10)
    make_server().start(mux_of({"t": skip}))
    wait_until(lambda: state(r, info.id) == "archived")
    assert msg(r, info.id)["error_msg"] == "malformed input"


def test_revoke_task_drops_it_as_processed(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def revoke(task: Task) -> None:
        raise RevokeTask("not needed")

    info = client.enqueue(Task("t", b"x"), max_retry=10, unique=600)
    make_server().start(mux_of({"t": revoke}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert counter(r, "asynq:{default}:failed") == 0
    assert r.keys("asynq:{default}:unique:*") == []


def test_is_failure_false_retries_without_counting(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def busy(task: Task) -> None:
        raise ConnectionError("rate limited")

    info = client.enqueue(Task("t"), max_retry=1)
    make_server(is_failure=lambda e: not isinstance(e, ConnectionError)).start(mux_of({"t": busy}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["retried"] == 0
    assert counter(r, "asynq:{default}:failed") == 0
    assert counter(r, "asynq:{default}:processed") == 0


def test_an_error_that_is_not_a_failure_is_retried_even_without_retries_left(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """asynq's handleFailedMessage asks IsFailure before it counts retries."""
    seen: list[BaseException] = []

    def busy(task: Task) -> None:
        raise ConnectionError("rate limited")

    def delay(n: int, e: BaseException, t: Task) -> float:
        seen.append(e)
        return 3600

    info = client.enqueue(Task("t"), max_retry=0)
    server = make_server(is_failure=lambda e: not isinstance(e, ConnectionError), retry_delay=delay)
    server.start(mux_of({"t": busy}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["retried"] == 0
    assert len(seen) == 1, "retry_delay was asked, as the task is retried"


def test_retry_is_forwarded_and_run_again(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    attempts: list[int] = []

    def flaky(task: Task) -> None:
        attempts.append(task.retry_count)
        if task.retry_count == 0:
            raise OSError("transient")

    info = client.enqueue(Task("t"), max_retry=3)
    make_server(retry_delay=lambda n, e, t: 0).start(mux_of({"t": flaky}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 2)
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert attempts == [0, 1]


def test_unknown_task_type_fails_like_asynq(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("nobody:handles"), max_retry=2)
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["error_msg"] == 'handler not found for task "nobody:handles"'


def test_scheduled_task_runs_when_due(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    ran = threading.Event()
    info = client.enqueue(Task("t"), process_in=2)
    assert r.zscore("asynq:{default}:scheduled", info.id) is not None
    make_server().start(mux_of({"t": lambda t: ran.set()}))
    # Scores are whole seconds, so the task is due between 1 and 2 seconds from now.
    assert not ran.wait(0.8), "ran before it was due"
    assert ran.wait(10)


def test_many_successes_at_once_leave_nothing_behind(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    # Successes are written in batches (one script call for many tasks): every task, counter
    # and unique lock must come out as if each had been finished on its own.
    plain = client.enqueue_many([Task("t") for _ in range(300)])
    unique = [client.enqueue(Task("t", str(i).encode()), unique=600) for i in range(100)]
    kept = client.enqueue(Task("t", b"kept"), retention=3600)
    make_server(concurrency=64).start(mux_of({"t": lambda t: None}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 401)
    assert counter(r, f"asynq:{{default}}:processed:{today()}") == 401
    assert r.llen("asynq:{default}:active") == 0
    assert r.zcard("asynq:{default}:lease") == 0
    for info in [*plain, *unique]:
        assert not isinstance(info, Exception)
        assert not r.exists(f"asynq:{{default}}:t:{info.id}")
    assert r.keys("asynq:{default}:unique:*") == []
    assert state(r, kept.id) == "completed"


def test_outcomes_survive_a_script_cache_flush(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    # Pipelines use EVALSHA without loading first; after SCRIPT FLUSH (or on a new server) the
    # calls answered NOSCRIPT did not run, and must run once the scripts are loaded again.
    gate = threading.Event()
    # No syncer to fall back on: the pipeline itself must recover.
    srv = make_server(concurrency=16, syncer_interval=3600)
    srv.start(mux_of({"t": lambda t: gate.wait(10)}))
    infos = [client.enqueue(Task("t")) for _ in range(16)]
    wait_until(lambda: r.llen("asynq:{default}:active") == 16)
    r.script_flush()
    gate.set()
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 16)
    assert r.llen("asynq:{default}:active") == 0
    assert all(
        not r.exists(f"asynq:{{default}}:t:{i.id}") for i in infos if not isinstance(i, Exception)
    )


def test_announced_scheduled_task_runs_when_due_not_at_the_next_check(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    # asynq's forwarder would only look at the next check, an hour away: the ferroq client's
    # announcement of the process-at wakes the forwarder when the task is due.
    ran = threading.Event()
    make_server(delayed_task_check_interval=3600).start(mux_of({"t": lambda t: ran.set()}))
    wait_until(lambda: _listening(r))
    client.enqueue(Task("t"), process_in=1)
    assert ran.wait(10)


def test_scheduled_before_the_server_started_runs_when_due(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    ran = threading.Event()
    client.enqueue(Task("t"), process_in=1)
    make_server(delayed_task_check_interval=3600).start(mux_of({"t": lambda t: ran.set()}))
    assert ran.wait(10)


def test_own_retry_runs_when_due_not_at_the_next_check(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    attempts: list[int] = []
    second = threading.Event()

    def flaky(task: Task) -> None:
        attempts.append(task.retry_count)
        if task.retry_count == 0:
            raise OSError("transient")
        second.set()

    srv = make_server(delayed_task_check_interval=3600, retry_delay=lambda n, e, t: 1)
    srv.start(mux_of({"t": flaky}))
    wait_until(lambda: _listening(r))
    client.enqueue(Task("t"), max_retry=3)
    assert second.wait(10)
    assert attempts == [0, 1]


def test_unannounced_scheduled_task_waits_for_the_check(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    # What an asynq producer does: ZADD without a word. The periodic check still finds it.
    ran = threading.Event()
    make_server(delayed_task_check_interval=0.5).start(mux_of({"t": lambda t: ran.set()}))
    wait_until(lambda: _listening(r))
    r.sadd("asynq:queues", "default")
    r.hset(
        "asynq:{default}:t:quiet",
        mapping={
            "msg": wire.encode_task(type="t", id="quiet", queue="default"),
            "state": "scheduled",
        },
    )
    r.zadd("asynq:{default}:scheduled", {"quiet": int(time.time())})
    assert ran.wait(10)


def test_malformed_message_is_archived_and_the_loop_goes_on(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    r.sadd("asynq:queues", "default")
    r.hset("asynq:{default}:t:bad1", mapping={"msg": b"\xff\xfe garbage", "state": "pending"})
    wrong = wire.encode_task(type="t", id="other", queue="default")
    r.hset("asynq:{default}:t:bad2", mapping={"msg": wrong, "state": "pending"})
    r.lpush("asynq:{default}:pending", "bad1", "bad2", "ghost")
    ok = client.enqueue(Task("t"))
    done = threading.Event()
    make_server().start(mux_of({"t": lambda t: done.set()}))
    assert done.wait(10)
    wait_until(lambda: state(r, "bad1") == "archived" and state(r, "bad2") == "archived")
    err = r.hget("asynq:{default}:t:bad1", "error")
    assert isinstance(err, bytes) and b"malformed task message" in err
    assert r.hget("asynq:{default}:t:bad1", "msg") == b"\xff\xfe garbage", "raw bytes are kept"
    assert b"do not match" in (r.hget("asynq:{default}:t:bad2", "error") or b"")
    wait_until(lambda: empty_active(r))
    assert not r.exists(f"asynq:{{default}}:t:{ok.id}")
    assert r.zcard("asynq:{default}:archived") == 2


def test_heartbeat_publishes_server_and_workers(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    hold = Holder()
    started, release = hold.started, hold.release

    info = client.enqueue(Task("hold", b"data"), queue="critical")
    srv = make_server(concurrency=7, queues={"critical": 6, "default": 3})
    srv.start(mux_of({"hold": hold}))
    assert started.wait(10)
    workers_key = cast(list[bytes], wait_until(lambda: r.zrange("asynq:workers", 0, -1)))[0]
    server_key = cast(bytes, r.zrange("asynq:servers", 0, -1)[0])
    assert server_key.endswith(f":{srv.server_id}}}".encode())
    si = wire.server_info(cast(bytes, r.get(server_key)))
    assert si["pid"] == os.getpid() and si["server_id"] == srv.server_id
    assert si["concurrency"] == 7 and si["queues"] == {"critical": 6, "default": 3}
    assert si["status"] == "active" and si["start_time"]["seconds"] > 0
    assert 0 < r.ttl(server_key) <= 1
    wait_until(lambda: r.hget(workers_key, info.id))
    wi = wire.worker_info(cast(bytes, r.hget(workers_key, info.id)))
    assert (wi["task_id"], wi["task_type"], wi["task_payload"], wi["queue"]) == (
        info.id, "hold", b"data", "critical",
    )  # fmt: skip
    assert wi["deadline"]["seconds"] == pytest.approx(time.time() + 1800, abs=5)
    release.set()
    srv.shutdown()
    assert not r.exists(server_key) and not r.exists(workers_key)
    assert r.zcard("asynq:servers") == 0 and r.zcard("asynq:workers") == 0


def test_paused_queue_is_skipped(client: Client, r: redis.Redis, make_server: MakeServer) -> None:
    ran = threading.Event()
    r.set("asynq:{default}:paused", int(time.time()))
    client.enqueue(Task("t"))
    make_server().start(mux_of({"t": lambda t: ran.set()}))
    assert not ran.wait(0.5)
    assert r.llen("asynq:{default}:pending") == 1
    r.delete("asynq:{default}:paused")
    assert ran.wait(10)


def test_strict_priority_drains_higher_queues_first(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    order: list[str] = []
    for _ in range(20):
        client.enqueue(Task("t", b"low"), queue="low")
        client.enqueue(Task("t", b"high"), queue="high")
    make_server(concurrency=1, queues={"high": 2, "low": 1}, strict_priority=True).start(
        mux_of({"t": lambda t: order.append(t.payload.decode())})
    )
    wait_until(lambda: len(order) == 40)
    assert order == ["high"] * 20 + ["low"] * 20


def test_weighted_priority_serves_every_queue(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    seen: list[str] = []
    for q in ("a", "b", "c"):
        client.enqueue_many([Task("t", q.encode()) for _ in range(100)], queue=q)
    make_server(concurrency=1, queues={"a": 6, "b": 3, "c": 1}).start(
        mux_of({"t": lambda t: seen.append(t.payload.decode())})
    )
    wait_until(lambda: len(seen) == 300, timeout=30)
    first = seen[:60]
    assert {"a", "b"} <= set(first)
    assert first.count("a") > first.count("c")
    # Weighted, not strict: the low-priority queue is served before the others are drained (by
    # chance it is not, with weight 1 in 10, with probability 0.9**166, about 3e-8).
    last_a = len(seen) - 1 - seen[::-1].index("a")
    assert seen.index("c") < last_a, "c waited until a was drained: that is strict priority"


def test_worker_processes_10000_tasks_sync_and_async(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    n = 10_000
    client.enqueue_many([Task("ok:sync" if i % 2 else "ok:async") for i in range(n)])
    p = worker(redis_url, "--concurrency", "20", "--queue", "default=1")
    try:
        wait_until(lambda: counter(r, "asynq:{default}:processed") >= n, timeout=120)
    finally:
        p.terminate()
        assert p.wait(30) == 0
    assert counter(r, "asynq:{default}:processed") == n
    assert counter(r, "asynq:{default}:failed") == 0
    assert r.llen("asynq:{default}:pending") == 0
    assert empty_active(r)
    assert r.keys("asynq:{default}:t:*") == []


def test_task_written_by_another_producer_is_processed(
    r: redis.Redis, make_server: MakeServer
) -> None:
    """A message as any proto3 writer (Go's asynq) emits it, with extreme but legal values."""
    seen: list[Task] = []
    data = wire.encode_task(
        type="go:task", payload=b"\x00\x01", id="go-1", queue="default", retry=3,
        timeout=-5, deadline=2**62, headers={"origin": "go"},
    )  # fmt: skip
    r.sadd("asynq:queues", "default")
    r.hset("asynq:{default}:t:go-1", mapping={"msg": data, "state": "pending", "pending_since": 1})
    r.lpush("asynq:{default}:pending", "go-1")
    make_server().start(mux_of({"go:": seen.append}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    (t,) = seen
    assert (t.id, t.payload, t.headers, t.max_retry) == ("go-1", b"\x00\x01", {"origin": "go"}, 3)
    assert t.deadline is not None and t.deadline.year > 2100, "clamped, not overflowed"


def test_dequeue_marks_the_task_active_with_a_lease(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    hold = Holder()
    started, release = hold.started, hold.release

    info = client.enqueue(Task("t"))
    assert r.hexists(f"asynq:{{default}}:t:{info.id}", "pending_since")
    make_server().start(mux_of({"t": hold}))
    assert started.wait(10)
    key = f"asynq:{{default}}:t:{info.id}"
    assert state(r, info.id) == "active"
    assert not r.hexists(key, "pending_since")
    assert r.lrange("asynq:{default}:active", 0, -1) == [info.id.encode()]
    assert r.llen("asynq:{default}:pending") == 0
    lease = r.zscore("asynq:{default}:lease", info.id)
    assert lease == pytest.approx(time.time() + 30, abs=3)
    release.set()


def test_run_puts_the_signal_handlers_back_when_it_returns(make_server: MakeServer) -> None:
    """An embedding program that goes on after run() gets its own handlers back."""

    def mine(signum: int, frame: object) -> None:
        pass

    before = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = make_server()
        stopper = threading.Timer(0.5, server.shutdown)
        stopper.start()
        server.run(mux_of({"t": lambda task: None}))
        stopper.join()
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_forwarder_moves_due_tasks_to_pending(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    r.set("asynq:{default}:paused", 1)  # keep what is forwarded in pending, where we can see it
    due = client.enqueue(Task("t"), process_in=3600)
    r.zadd("asynq:{default}:scheduled", {due.id: int(time.time()) - 1})
    later = client.enqueue(Task("t"), process_in=3600)
    r.hset(f"asynq:{{default}}:t:{due.id}", "state", "scheduled")
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: state(r, due.id) == "pending")
    since = int(r.hget(f"asynq:{{default}}:t:{due.id}", "pending_since") or 0)
    assert since == pytest.approx(time.time_ns(), abs=5e9)
    assert r.lrange("asynq:{default}:pending", 0, -1) == [due.id.encode()]
    assert r.zrange("asynq:{default}:scheduled", 0, -1) == [later.id.encode()]
    assert state(r, later.id) == "scheduled"


def test_forwarder_returns_grouped_retries_to_their_group(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("t"), process_in=3600)
    key = f"asynq:{{default}}:t:{info.id}"
    r.hset(key, mapping={"state": "retry", "group": "batch"})
    r.zrem("asynq:{default}:scheduled", info.id)
    r.zadd("asynq:{default}:retry", {info.id: int(time.time()) - 1})
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "aggregating")
    assert r.zscore("asynq:{default}:g:batch", info.id) is not None
    assert r.zcard("asynq:{default}:retry") == 0


def test_forwarder_logs_a_group_it_could_not_list(
    client: Client, r: redis.Redis, make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A groups key of another type: the task still goes back into its group, and the log says
    that asynq's aggregator will not find it."""
    caplog.set_level(logging.WARNING)
    r.set("asynq:{default}:groups", "not a set")
    info = client.enqueue(Task("t"), process_in=3600)
    r.hset(f"asynq:{{default}}:t:{info.id}", mapping={"state": "retry", "group": "batch"})
    r.zrem("asynq:{default}:scheduled", info.id)
    r.zadd("asynq:{default}:retry", {info.id: int(time.time()) - 1})
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: state(r, info.id) == "aggregating")
    wait_until(lambda: "adding the groups to asynq:{default}:groups failed" in caplog.text, 10)


def test_archive_drops_entries_older_than_90_days(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    old_score = int(time.time()) - 91 * 86400
    r.zadd("asynq:{default}:archived", {"ancient": old_score, "recent": int(time.time()) - 60})
    r.hset("asynq:{default}:t:ancient", mapping={"msg": b"x", "state": "archived"})
    r.hset("asynq:{default}:t:recent", mapping={"msg": b"x", "state": "archived"})

    def boom(task: Task) -> None:
        raise SkipRetry("done for")

    info = client.enqueue(Task("t"))
    make_server().start(mux_of({"t": boom}))
    wait_until(lambda: state(r, info.id) == "archived")
    # The trim follows the archive, in a call of its own.
    wait_until(lambda: not r.zscore("asynq:{default}:archived", "ancient"))
    members = {cast(bytes, m).decode() for m in r.zrange("asynq:{default}:archived", 0, -1)}
    assert members == {"recent", info.id}
    assert not r.exists("asynq:{default}:t:ancient"), "the trimmed task's hash goes too"
    assert r.exists("asynq:{default}:t:recent")


@pytest.mark.parametrize("exc", [SystemExit(1), KeyboardInterrupt(), GeneratorExit()])
def test_base_exceptions_in_handlers_fail_the_task_not_the_server(
    client: Client, r: redis.Redis, make_server: MakeServer, exc: BaseException
) -> None:
    def bad(task: Task) -> None:
        raise exc

    async def bad_async(task: Task) -> None:
        raise exc

    sync_info = client.enqueue(Task("sync"), max_retry=1)
    async_info = client.enqueue(Task("async"), max_retry=1)
    after = threading.Event()
    make_server().start(mux_of({"sync": bad, "async": bad_async, "after": lambda t: after.set()}))
    wait_until(lambda: state(r, sync_info.id) == "retry" and state(r, async_info.id) == "retry")
    client.enqueue(Task("after"))
    assert after.wait(10), "the server goes on"
    assert msg(r, sync_info.id)["error_msg"].startswith(type(exc).__name__)


@pytest.mark.parametrize("delay", [float("inf"), float("nan"), 1e19])
def test_an_absurd_retry_delay_does_not_stall_the_server(
    client: Client, r: redis.Redis, make_server: MakeServer, delay: float
) -> None:
    def boom(task: Task) -> None:
        raise ValueError("x")

    bad = client.enqueue(Task("boom"), max_retry=3)
    after = threading.Event()
    make_server(concurrency=1, retry_delay=lambda n, e, t: delay).start(
        mux_of({"boom": boom, "after": lambda t: after.set()})
    )
    wait_until(lambda: state(r, bad.id) == "retry")
    client.enqueue(Task("after"))
    assert after.wait(10), "the server goes on"
    assert (r.zscore("asynq:{default}:retry", bad.id) or 0) > time.time()


def test_broken_errors_and_hooks_still_give_an_outcome(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def boom(task: Task) -> None:
        raise Unprintable()

    def hook(task: Task, exc: BaseException) -> None:
        raise KeyboardInterrupt  # even this must not lose the task

    info = client.enqueue(Task("t"), max_retry=0)
    after = threading.Event()
    make_server(concurrency=1, error_handler=hook).start(
        mux_of({"t": boom, "after": lambda t: after.set()})
    )
    wait_until(lambda: state(r, info.id) == "archived")
    assert msg(r, info.id)["error_msg"] == "Unprintable"
    client.enqueue(Task("after"))
    assert after.wait(10)


def test_revoke_deletes_even_with_retention(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    def revoke(task: Task) -> None:
        raise RevokeTask("drop it")

    info = client.enqueue(Task("t"), retention=3600)
    make_server().start(mux_of({"t": revoke}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert r.zcard("asynq:{default}:completed") == 0


def test_busy_slots_are_not_mistaken_for_empty_queues(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """With every slot busy the processor waits for a slot, not for the idle poll (here 30 s)."""
    client.enqueue_many([Task("t") for _ in range(4)])
    make_server(concurrency=1, task_check_interval=30).start(
        mux_of({"t": lambda t: time.sleep(0.2)})
    )
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 4, timeout=10)


@pytest.mark.parametrize("many", [False, True], ids=["enqueue", "enqueue_many"])
def test_an_idle_server_wakes_for_a_ferroq_enqueue_without_polling(
    client: Client, r: redis.Redis, make_server: MakeServer, many: bool
) -> None:
    """With a 60 s poll, only the wake-up published by the enqueue can explain a prompt run."""
    ran = threading.Event()
    srv = make_server(task_check_interval=60, delayed_task_check_interval=60)
    srv.start(mux_of({"t": lambda t: ran.set()}))
    wait_until(lambda: r.pubsub_numsub("asynq:{default}:wake")[0][1] == 1)
    time.sleep(0.2)  # let the processor go idle
    if many:
        client.enqueue_many([Task("t"), Task("t")])
    else:
        client.enqueue(Task("t"))
    assert ran.wait(10)


def test_tasks_from_producers_that_do_not_publish_are_served_at_the_poll(
    r: redis.Redis, make_server: MakeServer
) -> None:
    """asynq's Go client never publishes a wake-up: its tasks wait for the next poll."""
    ran = threading.Event()
    make_server(task_check_interval=0.5).start(mux_of({"t": lambda t: ran.set()}))
    time.sleep(0.3)
    data = wire.encode_task(type="t", id="silent", queue="default", retry=1, timeout=60)
    r.sadd("asynq:queues", "default")
    r.hset("asynq:{default}:t:silent", mapping={"msg": data, "state": "pending"})
    r.lpush("asynq:{default}:pending", "silent")
    assert ran.wait(10)
