"""The Scheduler against real Redis: firings, asynq's published layout, exactly-once across
replicas that are killed at random, catch-up, the unserved-queue warning and ``ferroq doctor``."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest
import redis

import wire
from ferroq import (
    CronSchedule,
    CronSpecError,
    InvalidArgumentError,
    PeriodicTaskConfig,
    PeriodicTaskManager,
    Scheduler,
    Server,
    Task,
    TaskInfo,
)
from ferroq import scheduler as scheduler_module
from ferroq.cli import doctor
from ferroq.scheduler import ENTRY_HEADER, FIRED_AT_HEADER
from util import wait_until

ROOT = Path(__file__).resolve().parent.parent
GO_ZERO_TIME = -62135596800


@pytest.fixture
def make_scheduler(redis_url: str) -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(**kw: Any) -> Scheduler:
        s = Scheduler(redis_url, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.shutdown()


def periodic_tasks(r: redis.Redis, q: str) -> list[dict[str, Any]]:
    ids = cast(list[bytes], r.lrange(f"asynq:{{{q}}}:pending", 0, -1))
    out = []
    for i in ids:
        raw = r.hget(f"asynq:{{{q}}}:t:{i.decode()}", "msg")
        assert isinstance(raw, bytes)
        out.append(wire.task(raw))
    return out


def at_least(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]] | None:
    return items if len(items) >= n else None


def test_entry_fires_on_schedule_with_its_options(
    r: redis.Redis, make_scheduler: Callable[..., Scheduler]
) -> None:
    posted: list[TaskInfo | None] = []
    pre: list[tuple[str, Any]] = []
    s = make_scheduler(
        post_enqueue=lambda info, err: posted.append(info),
        pre_enqueue=lambda task, opts: pre.append((task.type, opts["queue"])),
    )
    eid = s.register("* * * * * *", Task("tick", b"p"), queue="q", max_retry=3, timeout=90)
    s.start()
    tasks = wait_until(lambda: at_least(periodic_tasks(r, "q"), 2))
    first = tasks[-1]  # LPUSH: the oldest is last
    assert (first["type"], first["payload"], first["retry"], first["timeout"]) == (
        "tick",
        b"p",
        3,
        90,
    )
    assert first["headers"][ENTRY_HEADER] == eid
    fired = [datetime.fromisoformat(t["headers"][FIRED_AT_HEADER]) for t in reversed(tasks)]
    assert all(f.microsecond == 0 for f in fired)
    assert (fired[1] - fired[0]).total_seconds() == 1
    assert posted and all(p is not None and p.queue == "q" for p in posted)
    assert pre and pre[0] == ("tick", "q")
    history = cast(list[bytes], r.zrange(f"asynq:scheduler_history:{eid}", 0, -1))
    events = [wire.enqueue_event(h) for h in history]
    assert {e["task_id"] for e in events} >= {t["id"] for t in tasks[:1]}
    # The entry's last-fired second is one of its firings, no older than those seen above (it
    # may have fired again since).
    last = r.get(f"asynq:{{q}}:periodic:{eid}")
    assert last is not None
    stamps = {
        int(datetime.fromisoformat(t["headers"][FIRED_AT_HEADER]).timestamp())
        for t in periodic_tasks(r, "q")
    }
    assert int(last) in stamps and int(last) >= int(fired[-1].timestamp())


def test_entries_are_published_as_asynq_does(
    r: redis.Redis, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(heartbeat_interval=1)
    eid = s.register("0 0 1 1 *", Task("yearly", b"\x01"), queue="q", max_retry=3, timeout=90)
    s.start()
    key = f"asynq:schedulers:{{{s.id}}}"
    wait_until(lambda: r.zscore("asynq:schedulers", key))
    (raw,) = cast(list[bytes], r.lrange(key, 0, -1))
    e = wire.scheduler_entry(raw)
    assert (e["id"], e["spec"], e["task_type"], e["task_payload"]) == (
        eid,
        "0 0 1 1 *",
        "yearly",
        b"\x01",
    )
    assert e["enqueue_options"] == ["MaxRetry(3)", 'Queue("q")', "Timeout(1m30s)"]
    nxt = CronSchedule("0 0 1 1 *").next_after(datetime.now(timezone.utc))
    assert e["next_enqueue_time"]["seconds"] == int(nxt.timestamp())
    assert e["prev_enqueue_time"]["seconds"] == GO_ZERO_TIME, "never fired: Go's zero time"
    assert 0 < r.ttl(key) <= 2
    s.shutdown()
    assert not r.exists(key) and r.zcard("asynq:schedulers") == 0


def replica(redis_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferroq",
            "--log-level",
            "ERROR",
            "scheduler",
            "tests.apps:scheduler",
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
    )


def test_three_replicas_killed_at_random_fire_each_second_exactly_once(
    r: redis.Redis, redis_url: str
) -> None:
    rng = random.Random(1127)
    replicas = [replica(redis_url) for _ in range(3)]
    try:
        wait_until(lambda: r.llen("asynq:{ticks}:pending") >= 2, timeout=30)
        start = time.time()
        for _ in range(6):
            time.sleep(rng.uniform(1.0, 2.5))
            i = rng.randrange(3)
            replicas[i].kill()  # SIGKILL: no shutdown, no cleanup
            replicas[i].wait()
            replicas[i] = replica(redis_url)
        end = time.time()
        time.sleep(1.5)
    finally:
        for p in replicas:
            p.send_signal(signal.SIGTERM)
        for p in replicas:
            p.wait(30)
    fired = Counter(int(datetime.fromisoformat(t["headers"][FIRED_AT_HEADER]).timestamp())
                    for t in periodic_tasks(r, "ticks"))  # fmt: skip
    duplicates = {ts: n for ts, n in fired.items() if n > 1}
    assert not duplicates, f"fired more than once: {duplicates}"
    window = range(int(start) + 1, int(end))
    missing = [ts for ts in window if ts not in fired]
    assert not missing, f"no replica fired {missing} (of {len(window)} seconds)"
    assert len(window) >= 8


def test_missed_firings_are_skipped_unless_catching_up(
    r: redis.Redis, make_scheduler: Callable[..., Scheduler]
) -> None:
    spec, task = "0 * * * *", Task("hourly")
    probe = make_scheduler()
    eid = probe.register(spec, task, queue="h")
    prev = CronSchedule(spec).prev_before(datetime.now(timezone.utc))
    # The entry last fired the hour before the one that was missed.
    r.set(f"asynq:{{h}}:periodic:{eid}", int(prev.timestamp()) - 3600)
    skipping = make_scheduler()
    skipping.register(spec, task, queue="h")
    skipping.start()
    assert r.llen("asynq:{h}:pending") == 0
    catching = make_scheduler(catch_up=True)
    catching.register(spec, task, queue="h")
    catching.start()  # catching up happens before start() returns
    (t,) = periodic_tasks(r, "h")
    assert t["headers"][FIRED_AT_HEADER] == prev.isoformat()
    again = make_scheduler(catch_up=True)
    again.register(spec, task, queue="h")
    again.start()
    assert r.llen("asynq:{h}:pending") == 1, "a caught-up firing is not caught up twice"


def test_unserved_queue_is_warned_about_once_and_doctor_reports_it(
    r: redis.Redis,
    redis_url: str,
    make_scheduler: Callable[..., Scheduler],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduler_module, "_SERVED_GRACE", 2.0)
    s = make_scheduler(heartbeat_interval=1)
    s.register("* * * * * *", Task("tick"), queue="lonely")

    def warnings() -> list[str]:
        return [m for m in caplog.messages if "no live server serves queue 'lonely'" in m]

    s.start()
    wait_until(lambda: r.llen("asynq:{lonely}:pending") >= 1)
    assert not warnings(), "servers get a heartbeat round before the warning"
    wait_until(lambda: warnings(), timeout=10)
    assert r.llen("asynq:{lonely}:pending") >= 2
    wait_until(lambda: r.llen("asynq:{lonely}:pending") >= 5)
    assert len(warnings()) == 1
    problems = doctor(redis_url)
    assert any("'lonely'" in p and "scheduler entry" in p for p in problems)
    assert any("'lonely'" in p and "pending" in p for p in problems)
    srv = Server(redis_url, queues={"lonely": 1}, task_check_interval=0.05)
    srv.start(lambda t: None)
    try:
        wait_until(lambda: not [p for p in doctor(redis_url) if "'lonely'" in p])
    finally:
        srv.shutdown()


def test_doctor_command_exit_codes(redis_url: str, r: redis.Redis) -> None:
    ok = subprocess.run([sys.executable, "-m", "ferroq", "doctor", "--redis", redis_url],
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0 and "ok:" in ok.stdout
    r.sadd("asynq:queues", "stuck")
    r.lpush("asynq:{stuck}:pending", "x")
    bad = subprocess.run([sys.executable, "-m", "ferroq", "doctor", "--redis", redis_url],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 1 and "'stuck'" in bad.stdout


def test_scheduled_tasks_are_served_end_to_end(
    r: redis.Redis, redis_url: str, make_scheduler: Callable[..., Scheduler]
) -> None:
    seen: list[str] = []
    s = make_scheduler()
    s.register("* * * * * *", Task("tick"), queue="work")
    srv = Server(redis_url, queues={"work": 1}, task_check_interval=0.05)
    srv.start(lambda t: seen.append(t.headers[FIRED_AT_HEADER]))
    try:
        s.start()
        wait_until(lambda: len(seen) >= 2)
    finally:
        srv.shutdown()


def test_factory_entries_build_a_fresh_task_each_firing(
    r: redis.Redis, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler()
    calls = iter(range(1000))

    @s.periodic("* * * * * *", queue="f")
    def build() -> Task:
        return Task("made", str(next(calls)).encode())

    s.start()
    tasks = wait_until(lambda: at_least(periodic_tasks(r, "f"), 2))
    assert len({t["payload"] for t in tasks}) == len(tasks)


def test_unregister_stops_an_entry(
    r: redis.Redis, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler()
    eid = s.register("* * * * * *", Task("tick"), queue="u")
    s.start()
    wait_until(lambda: r.llen("asynq:{u}:pending") >= 1)
    s.unregister(eid)
    n = r.llen("asynq:{u}:pending")
    time.sleep(2.2)  # two firings' worth: none may come
    assert r.llen("asynq:{u}:pending") == n
    assert s.entry_ids == []


def test_bad_registrations_are_refused(make_scheduler: Callable[..., Scheduler]) -> None:
    s = make_scheduler()
    with pytest.raises(CronSpecError, match="hour field"):
        s.register("* 99 * * *", Task("t"))
    s.register("@hourly", Task("t"))
    with pytest.raises(InvalidArgumentError, match="registered already"):
        s.register("@hourly", Task("t"))
    with pytest.raises(InvalidArgumentError):
        s.register("@hourly", Task("t2"), queue=" ")


def test_periodic_task_manager_follows_its_provider(r: redis.Redis, redis_url: str) -> None:
    configs = [PeriodicTaskConfig("@hourly", Task("a")), PeriodicTaskConfig("@daily", Task("b"))]
    manager = PeriodicTaskManager(lambda: list(configs), sync_interval=3600, redis_url=redis_url)
    try:
        manager.start()
        assert len(manager.scheduler.entry_ids) == 2
        kept = manager.scheduler.entry_ids[0]
        configs.pop()
        configs.append(PeriodicTaskConfig("@weekly", Task("c"), {"queue": "w"}))
        manager.sync()
        ids = manager.scheduler.entry_ids
        assert len(ids) == 2 and kept in ids
    finally:
        manager.shutdown()


def test_three_threads_hammering_one_firing_enqueue_it_once(r: redis.Redis, redis_url: str) -> None:
    """The transaction itself, without timing: many replicas racing for the same instant."""
    from ferroq._native import Fired, NativeClient, TaskOptions

    clients = [NativeClient(redis_url) for _ in range(8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(clients))

    def race(c: NativeClient) -> None:
        barrier.wait()
        fired, _ = c.periodic_enqueue(
            "race", None, {}, TaskOptions(queue="race"), "entry-1", 1_800_000_000, 3600
        )
        outcomes.append("enqueued" if fired == Fired.ENQUEUED else "already_fired")

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_fired"] * 7 + ["enqueued"]
    assert r.llen("asynq:{race}:pending") == 1


def test_a_server_whose_heartbeat_lapsed_in_an_outage_is_no_false_alarm(
    r: redis.Redis,
    redis_url: str,
    make_scheduler: Callable[..., Scheduler],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a Redis stall the servers' heartbeats have expired until their next round: neither
    the scheduler nor ``doctor`` may report the queue unserved in that window."""
    monkeypatch.setattr(scheduler_module, "_SERVED_REFRESH", 0.0)  # re-read at every firing
    srv = Server(redis_url, queues={"busy": 1}, heartbeat_interval=1, task_check_interval=0.05)
    srv.start(lambda t: None)
    try:
        s = make_scheduler(heartbeat_interval=1)
        s.register("* * * * * *", Task("tick"), queue="busy")
        s.start()
        wait_until(lambda: r.get("asynq:{busy}:processed"))

        def lapse() -> bool:  # the heartbeat keys expired during the stall
            r.delete("asynq:servers", *r.keys("asynq:servers:*"))
            return False

        # Without a grace the lapse looks like a missing server (unless a heartbeat lands
        # between the two calls: a few attempts).
        assert any(lapse() or doctor(redis_url) for _ in range(5))
        lapse()
        assert not doctor(redis_url, grace=1.5), "the server is back within one round"
        # The heartbeat stays missing for 3 s of firings (deleted again as soon as it returns),
        # still within the scheduler's grace.
        until = time.monotonic() + 3
        while time.monotonic() < until:
            lapse()
            time.sleep(0.05)
        assert not [m for m in caplog.messages if "no live server serves queue 'busy'" in m]
    finally:
        srv.shutdown()


def test_an_unserved_queue_is_warned_about_after_the_grace_not_at_the_next_firing(
    r: redis.Redis,
    make_scheduler: Callable[..., Scheduler],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An hourly entry must not warn an hour late: the loop looks again once the grace is over."""
    monkeypatch.setattr(scheduler_module, "_SERVED_GRACE", 1.0)
    s = make_scheduler(heartbeat_interval=1)
    eid = s.register("* * * * * *", Task("tick"), queue="rare")
    s.start()
    wait_until(lambda: r.llen("asynq:{rare}:pending") >= 1)
    s.unregister(eid)  # no more firings
    wait_until(
        lambda: [m for m in caplog.messages if "no live server serves queue 'rare'" in m],
        timeout=10,
    )


def test_doctor_grace_confirms_a_problem_whose_counts_move(r: redis.Redis, redis_url: str) -> None:
    """The second look compares what is unserved, not the text (its counts change)."""
    r.sadd("asynq:queues", "fed")
    r.lpush("asynq:{fed}:pending", "t0")
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.wait(0.1):
            i += 1
            r.lpush("asynq:{fed}:pending", f"t{i}")

    t = threading.Thread(target=feed)
    t.start()
    try:
        problems = doctor(redis_url, grace=1.0)
    finally:
        stop.set()
        t.join()
    assert any("queue 'fed'" in p for p in problems)
