"""The faults fault injection found (issue 10), each pinned by a test on a real Redis: nothing stays
stuck in ``active``, a lost lease writes nothing, ghosts leave no hash, a broken queue starves no
other, a task past its deadline never starts, nothing runs before its time, recovery is tunable,
failures are logged, and a worker waits for Redis at start."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from ferroq import Client, LeaseExpired, Task
from ferroq._embedded import EmbeddedRedis, free_port
from server_helpers import (
    ROOT,
    MakeServer,
    counter,
    empty_active,
    msg,
    mux_of,
    state,
    worker,
)
from util import wait_until

#: Recovery settings short enough for a test: a dead worker's task is back within seconds.
QUICK_RECOVERY = {"lease_duration": 3, "lease_grace": 1, "recoverer_interval": 0.2}


def orphan(client: Client, r: redis.Redis, task: Task, **opts: object) -> str:
    """A task left in ``active`` with no lease entry, as if its worker died between steps."""
    info = client.enqueue(task, **opts)  # type: ignore[arg-type]
    assert r.rpoplpush("asynq:{default}:pending", "asynq:{default}:active") == info.id.encode()
    r.hset(f"asynq:{{default}}:t:{info.id}", "state", "active")
    return info.id


# ---- 1, 2: leases ------------------------------------------------------------------------


def test_a_running_task_whose_lease_entry_vanished_is_kept_and_completes(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    started, release = threading.Event(), threading.Event()
    cancelled: list[bool] = []

    def hold(task: Task) -> None:
        started.set()
        release.wait(20)
        cancelled.append(task.cancelled)

    info = client.enqueue(Task("t"), unique=3600)
    make_server(heartbeat_interval=0.2).start(mux_of({"t": hold}))
    assert started.wait(10)
    r.zrem("asynq:{default}:lease", info.id)  # nobody else has it: it is still in active here
    wait_until(lambda: r.zscore("asynq:{default}:lease", info.id) is not None)
    time.sleep(0.5)  # more heartbeats
    release.set()
    wait_until(lambda: cancelled)
    assert cancelled == [False], "the live worker keeps its task"
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    assert not r.exists(f"asynq:{{default}}:t:{info.id}")
    assert not r.keys("asynq:{default}:unique:*"), "its unique lock is released"
    assert empty_active(r) and r.zcard("asynq:{default}:lease") == 0


def test_a_task_that_ends_before_its_lease_entry_is_retaken_is_finished_once(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """The handler ends between the entry's removal and the next heartbeat: still in active,
    the task is this server's, and its success is written whole (no recovery, no rerun)."""
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def hold(task: Task) -> None:
        runs.append(task.retry_count)
        started.set()
        release.wait(20)

    info = client.enqueue(Task("t"), unique=3600, max_retry=0)
    srv = make_server(
        heartbeat_interval=5, lease_duration=30, lease_grace=1, recoverer_interval=0.2
    )
    srv.start(mux_of({"t": hold}))
    assert started.wait(10)
    r.zrem("asynq:{default}:lease", info.id)
    release.set()  # long before the 5 s heartbeat could take the lease back
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    assert not r.exists(f"asynq:{{default}}:t:{info.id}")
    assert not r.keys("asynq:{default}:unique:*")
    assert empty_active(r) and r.zcard("asynq:{default}:lease") == 0
    time.sleep(1.5)  # recoverer passes: nothing left to recover
    assert runs == [0] and counter(r, "asynq:{default}:failed") == 0


def test_an_active_task_no_lease_covers_is_recovered_with_the_servers_policy(
    client: Client, r: redis.Redis, make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = orphan(client, r, Task("t"), max_retry=3)
    seen: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def delay(retried: int, error: BaseException, task: Task) -> float:
        errors.append(error)
        return 0  # the server's retry_delay, not asynq's 15 s or more

    def run(task: Task) -> None:
        assert task.id is not None
        seen.append((task.retry_count, msg(r, task.id)["error_msg"]))

    handled: list[BaseException] = []
    srv = make_server(
        **QUICK_RECOVERY, retry_delay=delay, error_handler=lambda t, e: handled.append(e)
    )
    srv.start(mux_of({"t": run}))
    # It is given a lease of its own (10 s at least, so a live Go server could renew it), then
    # recovered once that lease and the grace are over.
    wait_until(lambda: seen, timeout=30)
    assert seen == [(1, "asynq: task lease expired")]
    assert len(errors) == 1 and isinstance(errors[0], LeaseExpired)
    assert not handled, "error_handler hears of handler errors only (asynq's recoverer)"
    logged = [rec for rec in caplog.records if "asynq: task lease expired" in rec.getMessage()]
    assert [rec.name for rec in logged] == ["ferroq.task"], "where handler failures go, once"
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{task_id}"))
    assert empty_active(r)


def test_the_recoverer_leaves_a_lease_alone_for_its_grace(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """``lease_grace`` is the allowance for clock skew: a lease that just ended is not taken."""
    task_id = orphan(client, r, Task("t"))
    ended = int(time.time())
    r.zadd("asynq:{default}:lease", {task_id: ended})
    srv = make_server(lease_duration=30, lease_grace=6, recoverer_interval=0.2)
    srv.start(mux_of({"other": lambda t: None}))
    time.sleep(2)  # ten recoverer passes, all well inside the grace
    assert state(r, task_id) == "active"
    wait_until(lambda: state(r, task_id) == "retry", timeout=15)
    assert time.time() >= ended + 6


def test_a_recovered_task_with_no_retries_left_is_archived_whatever_is_failure_says(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """As asynq's recoverer: an uncounted retry would let a task that kills its worker loop."""
    task_id = orphan(client, r, Task("t"), max_retry=0)
    r.zadd("asynq:{default}:lease", {task_id: int(time.time()) - 60})
    srv = make_server(**QUICK_RECOVERY, is_failure=lambda e: False)
    srv.start(mux_of({"other": lambda t: None}))
    wait_until(lambda: state(r, task_id) == "archived")
    assert msg(r, task_id)["error_msg"] == "asynq: task lease expired"


def test_a_one_second_lease_is_kept_by_a_live_worker(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    """Lease expiries are whole seconds, rounded up: the shortest lease still outlives the
    heartbeats that renew it, and a sub-second heartbeat publishes a valid server state."""
    ends: list[bool] = []

    def slow(task: Task) -> None:
        time.sleep(2.5)
        ends.append(task.cancelled)

    info = client.enqueue(Task("t"))
    make_server(lease_duration=1, lease_grace=0, heartbeat_interval=0.3).start(mux_of({"t": slow}))
    wait_until(lambda: r.zcard("asynq:servers") == 1)
    (key,) = r.keys("asynq:servers:{*")
    assert r.ttl(key) >= 1
    wait_until(lambda: ends)
    assert ends == [False], "never cancelled for a lease it was renewing"
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    assert counter(r, "asynq:{default}:processed") == 1


def test_a_killed_workers_task_runs_again_within_15_seconds(
    client: Client, r: redis.Redis, redis_url: str, make_server: MakeServer
) -> None:
    """The issue's settings: lease 5 s, grace 2 s, recoverer every 1 s, no retry delay."""
    info = client.enqueue(Task("crash"), max_retry=2)
    flags = ["--lease-duration", "5", "--lease-grace", "2", "--recoverer-interval", "1",
             "--heartbeat-interval", "1"]  # fmt: skip
    p = worker(redis_url, *flags)
    assert p.wait(30) == 3, "the handler's os._exit ends the worker"
    died = time.monotonic()
    retried: list[int] = []
    srv = make_server(
        lease_duration=5, lease_grace=2, recoverer_interval=1, retry_delay=lambda *a: 0
    )
    srv.start(mux_of({"crash": lambda t: retried.append(t.retry_count)}))
    wait_until(lambda: retried, timeout=20)
    took = time.monotonic() - died
    assert took <= 15, f"ran again {took:.1f} s after the kill"
    assert retried == [1], "recovered as a failed attempt (asynq: task lease expired)"
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))


def test_recovery_flags_are_refused_when_inconsistent(redis_url: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "ferroq", "worker", "tests.apps:mux", "--redis", redis_url,
         "--lease-duration", "3", "--heartbeat-interval", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert p.returncode != 0
    assert "heartbeat_interval" in p.stderr and "lease_duration" in p.stderr


# ---- 3: ghosts ---------------------------------------------------------------------------


def test_ghost_ids_leave_no_stray_hash(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    r.lpush("asynq:{default}:pending", "ghost", "bare")
    r.hset("asynq:{default}:t:bare", "state", "pending")  # a hash without msg
    r.zadd("asynq:{default}:scheduled", {"ghost-s": int(time.time()) - 1})
    r.sadd("asynq:queues", "default")
    info = client.enqueue(Task("t"))
    make_server().start(mux_of({"t": lambda t: None}))
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))
    wait_until(lambda: r.zcard("asynq:{default}:scheduled") == 0)
    time.sleep(0.3)
    for ghost in ("ghost", "bare", "ghost-s"):
        assert not r.exists(f"asynq:{{default}}:t:{ghost}"), ghost
    assert r.llen("asynq:{default}:pending") == 0
    assert empty_active(r) and r.zcard("asynq:{default}:lease") == 0


# ---- 4: a broken queue -------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["weighted", "strict"])
def test_a_broken_queue_does_not_starve_the_others(
    client: Client,
    r: redis.Redis,
    make_server: MakeServer,
    strict: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    r.set("asynq:{broken}:pending", "not a list")
    for i in range(200):
        client.enqueue(Task("t", str(i).encode()), queue="ok")
    done: list[bytes] = []
    srv = make_server(queues={"broken": 6, "ok": 1}, strict_priority=strict, concurrency=4)
    started = time.monotonic()
    srv.start(mux_of({"t": lambda t: done.append(t.payload)}))
    # Before the fix: 0 of 100 in 20 s (strict), 57 of 300 in 40 s (weighted).
    wait_until(lambda: len(done) == 200, timeout=15)
    took = time.monotonic() - started
    assert any("queue broken is broken" in m and "WRONGTYPE" in m for m in caplog.messages)
    logged = [m for m in caplog.messages if "queue broken is broken" in m]
    # The backoff doubles from 1 s: at most about log2(took) + 1 lines, not one per poll.
    assert len(logged) <= 2 + math.log2(max(took, 1.0)), logged


# ---- 5: deadlines ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_task_past_its_deadline_never_starts(
    client: Client, r: redis.Redis, make_server: MakeServer, kind: str
) -> None:
    ran = threading.Event()

    def sync(task: Task) -> None:
        ran.set()

    async def asyncf(task: Task) -> None:
        ran.set()

    past = datetime.now(timezone.utc) - timedelta(hours=1)
    info = client.enqueue(Task("t"), deadline=past, max_retry=1)
    make_server().start(mux_of({"t": sync if kind == "sync" else asyncf}))
    wait_until(lambda: state(r, info.id) == "retry")
    m = msg(r, info.id)
    assert (m["retried"], m["error_msg"]) == (1, "context deadline exceeded")
    assert not ran.is_set(), "asynq never starts a handler whose deadline has passed"
    assert counter(r, "asynq:{default}:processed") == 1
    assert counter(r, "asynq:{default}:failed") == 1


# ---- 6: nothing early --------------------------------------------------------------------


def test_scheduled_tasks_and_retries_never_run_early(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    due: dict[str, float] = {}
    ran: dict[str, float] = {}
    retried: dict[str, float] = {}
    failed_at: dict[str, float] = {}

    def run(task: Task) -> None:
        assert task.id is not None
        if task.type == "again" and task.id not in failed_at:
            failed_at[task.id] = time.time()
            raise RuntimeError("once")
        (retried if task.type == "again" else ran)[task.id] = time.time()

    srv = make_server(delayed_task_check_interval=0.05, retry_delay=lambda *a: 0.5)
    srv.start(mux_of({"t": run, "again": run}))
    for _ in range(8):
        before = time.time()
        info = client.enqueue(Task("t"), process_in=1.5)
        due[info.id] = before + 1.5
        assert info.next_process_at is not None
        assert info.next_process_at.timestamp() >= due[info.id]
        time.sleep(0.11)  # spread the enqueues over the second
    for _ in range(4):
        client.enqueue(Task("again"))
        time.sleep(0.13)
    wait_until(lambda: len(ran) == 8 and len(retried) == 4, timeout=15)
    early = {i: due[i] - ran[i] for i in ran if ran[i] < due[i]}
    assert not early, f"ran early by {early} s"
    assert all(retried[i] >= failed_at[i] + 0.5 for i in retried)


# ---- 8: failures are logged --------------------------------------------------------------


def test_every_failed_attempt_is_logged_with_its_traceback_and_never_its_payload(
    client: Client, r: redis.Redis, make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    def boom(task: Task) -> None:
        raise ValueError("bad input")

    again = client.enqueue(Task("boom", b"secret-payload"), max_retry=2)
    last = client.enqueue(Task("boom", b"secret-payload"), max_retry=0)
    unknown = client.enqueue(Task("nobody-handles-this", b"secret-payload"), max_retry=0)
    make_server(retry_delay=lambda *a: 3600).start(mux_of({"boom": boom}))
    wait_until(lambda: state(r, last.id) == "archived" and state(r, unknown.id) == "archived")
    wait_until(lambda: state(r, again.id) == "retry")
    records = [rec for rec in caplog.records if rec.name == "ferroq.task"]
    by_id = {rec.getMessage().split()[1]: rec for rec in records}
    retry, archived, missing = by_id[again.id], by_id[last.id], by_id[unknown.id]
    assert retry.levelno == logging.WARNING
    assert "(type boom, queue default)" in retry.getMessage()
    assert "attempt 1 of 3" in retry.getMessage() and "retried" in retry.getMessage()
    assert retry.exc_info is not None and retry.exc_info[0] is ValueError
    assert archived.levelno == logging.ERROR and "archived" in archived.getMessage()
    assert "attempt 1 of 1" in archived.getMessage()
    assert missing.levelno == logging.ERROR and "nobody-handles-this" in missing.getMessage()
    assert "secret-payload" not in caplog.text


# ---- 9: Redis down at start --------------------------------------------------------------


def test_a_worker_waits_for_redis_at_start() -> None:
    port = free_port()
    p = subprocess.Popen(
        [sys.executable, "-m", "ferroq", "worker", "tests.apps:mux", "--log-level", "WARNING",
         "--redis", f"redis://127.0.0.1:{port}/0", "--task-check-interval", "0.05"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert p.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(p.stderr or ()), daemon=True)
    reader.start()
    store = None
    try:
        wait_until(lambda: any("retrying until Redis" in line for line in lines), timeout=20)
        time.sleep(3)  # several attempts, with backoff
        assert p.poll() is None, "the worker keeps waiting for Redis"
        store = EmbeddedRedis(port=port).start()
        with Client(store.url) as c:
            info = c.enqueue(Task("ok:sync"))
        obs = redis.Redis.from_url(store.url)
        wait_until(lambda: counter(obs, "asynq:{default}:processed") == 1, timeout=20)
        assert not obs.exists(f"asynq:{{default}}:t:{info.id}")
        obs.close()
    finally:
        p.terminate()
        p.wait(timeout=30)
        reader.join(timeout=10)
        if store is not None:
            store.stop()
    waiting = [line for line in lines if "retrying until Redis is reachable" in line]
    assert len(waiting) == 1, "one line per interval, not one per attempt"
    assert f"127.0.0.1:{port}" in waiting[0], "the error names host:port"
    assert not [line for line in lines if " INFO " in line], "--log-level after the subcommand"
    assert p.returncode == 0


def test_log_level_after_the_subcommand_is_parsed(redis_url: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "ferroq", "doctor", "--redis", redis_url, "--log-level", "NOPE"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert p.returncode != 0 and "NOPE" in p.stderr


def test_run_without_waiting_raises_when_redis_is_unreachable() -> None:
    from ferroq import BrokerConnectionError, Server

    errors: list[BaseException] = []

    def run() -> None:  # off the main thread: no signal handlers are installed
        try:
            Server("redis://127.0.0.1:1").run(lambda t: None, wait_for_redis=False)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], BrokerConnectionError)
    assert "127.0.0.1:1" in str(errors[0])


# ---- 7 (ordering), 1: renewals of many tasks ---------------------------------------------


def test_every_running_task_keeps_its_lease(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    started = threading.Semaphore(0)
    release = threading.Event()

    def hold(task: Task) -> None:
        started.release()
        release.wait(30)

    ids = [client.enqueue(Task("t")).id for _ in range(3)]
    make_server(concurrency=3, heartbeat_interval=0.2).start(mux_of({"t": hold}))
    for _ in ids:
        assert started.acquire(timeout=10)
    # As if every lease were about to lapse, a second from now (not long expired: the
    # recoverer would rightly take a lease past its grace).
    for i in ids:
        r.zadd("asynq:{default}:lease", {i: int(time.time()) + 1})
    wait_until(
        lambda: all((r.zscore("asynq:{default}:lease", i) or 0) > time.time() + 20 for i in ids)
    )
    release.set()
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 3)
    assert math.isclose(r.zcard("asynq:{default}:lease"), 0)
