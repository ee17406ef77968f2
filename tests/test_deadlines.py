"""Deadlines, cancellations and leases: fired by the core, delivered to the running handler."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import pytest
import redis

from ferroq import (
    Client,
    DeadlineExceeded,
    Task,
)
from server_helpers import (
    Holder,
    MakeServer,
    counter,
    msg,
    mux_of,
    state,
)
from util import wait_until


def test_async_handler_is_cancelled_at_its_timeout(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    cancelled = threading.Event()

    async def slow(task: Task) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    info = client.enqueue(Task("t"), timeout=1, max_retry=2)
    make_server().start(mux_of({"t": slow}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert cancelled.is_set()
    assert msg(r, info.id)["error_msg"] == "context deadline exceeded"


def test_hung_sync_handler_is_flagged_and_failed_at_its_deadline(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    flagged = threading.Event()
    errors: list[BaseException] = []

    def hang(task: Task) -> None:
        if task.wait_cancelled(30):
            flagged.set()

    info = client.enqueue(Task("t"), timeout=1, max_retry=0)
    make_server(error_handler=lambda t, e: errors.append(e)).start(mux_of({"t": hang}))
    wait_until(lambda: state(r, info.id) == "archived")
    assert flagged.wait(5)
    assert msg(r, info.id)["error_msg"] == "context deadline exceeded"
    assert isinstance(errors[0], DeadlineExceeded)


def test_cancel_message_cancels_a_running_handler(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    started = threading.Event()

    async def long(task: Task) -> None:
        started.set()
        await asyncio.sleep(60)

    info = client.enqueue(Task("t"), max_retry=3)
    make_server().start(mux_of({"t": long}))
    assert started.wait(10)
    wait_until(lambda: r.publish("asynq:cancel", info.id) > 0)
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["error_msg"] == "context canceled"


def test_a_task_queued_behind_a_hung_handler_still_runs_once(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    runs: list[str] = []
    release = threading.Event()

    def hang(task: Task) -> None:
        release.wait(10)  # ignores task.cancelled

    def quick(task: Task) -> None:
        runs.append(task.id or "")

    hung = client.enqueue(Task("hang"), timeout=1, max_retry=0)
    make_server(concurrency=1).start(mux_of({"hang": hang, "quick": quick}))
    wait_until(lambda: state(r, hung.id) == "active")
    nxt = client.enqueue(Task("quick"), timeout=60)
    wait_until(lambda: state(r, hung.id) == "archived")
    wait_until(lambda: runs == [nxt.id])
    release.set()
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{nxt.id}"))
    assert runs == [nxt.id]


def test_an_async_handler_that_ignores_cancellation_is_failed_anyway(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    cancels: list[int] = []

    async def stubborn(task: Task) -> None:
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancels.append(1)  # swallowed

    info = client.enqueue(Task("t"), timeout=1, max_retry=1)
    make_server().start(mux_of({"t": stubborn}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["error_msg"] == "context deadline exceeded"
    assert cancels == [1], "cancelled once, not again and again"


def test_a_timeout_keeps_its_fraction_of_a_second(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    info = client.enqueue(Task("t"), timeout=2)
    make_server().start(mux_of({"t": lambda t: time.sleep(1.5)}))
    wait_until(lambda: counter(r, "asynq:{default}:processed") == 1)
    assert not r.exists(f"asynq:{{default}}:t:{info.id}"), "succeeded within its 2 s"


def test_a_lost_lease_cancels_the_handler(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    started, flagged = threading.Event(), threading.Event()

    def hold(task: Task) -> None:
        started.set()
        if task.wait_cancelled(20):
            flagged.set()

    info = client.enqueue(Task("t"))
    make_server().start(mux_of({"t": hold}))
    assert started.wait(10)
    # Another server recovered it (off active and lease, as the recoverer moves it) ...
    with r.pipeline() as p:
        p.lrem("asynq:{default}:active", 0, info.id)
        p.zrem("asynq:{default}:lease", info.id)
        p.execute()
    assert flagged.wait(10)
    # ... and leased it again: this server's late outcome must not touch it.
    far = int(time.time()) + 600
    with r.pipeline() as p:
        p.lpush("asynq:{default}:active", info.id)
        p.zadd("asynq:{default}:lease", {info.id: far})
        p.execute()
    time.sleep(1)
    assert state(r, info.id) == "active"
    assert r.zscore("asynq:{default}:lease", info.id) == far
    assert counter(r, "asynq:{default}:processed") == 0


def test_leases_are_renewed_while_a_handler_runs(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    hold = Holder()
    started, release = hold.started, hold.release

    info = client.enqueue(Task("t"))
    make_server().start(mux_of({"t": hold}))
    assert started.wait(10)
    # As if the lease were about to lapse: a second from now. (Not long expired: the recoverer,
    # whose first pass may come at any time, would rightly take a lease past its grace.)
    r.zadd("asynq:{default}:lease", {info.id: int(time.time()) + 1})
    wait_until(lambda: (r.zscore("asynq:{default}:lease", info.id) or 0) > time.time() + 20)
    release.set()
    wait_until(lambda: not r.exists(f"asynq:{{default}}:t:{info.id}"))


def test_a_cancel_that_comes_before_python_holds_the_task_is_delivered_when_it_does(
    client: Client, r: redis.Redis, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline has passed, and the hand-over to Python is slower than the grace: the
    deadline and the grace both run out before Python holds the task. The cancellation is kept
    and delivered when it does, so a handler that swallows it still fails (without the
    delivery it would hold its task until the test's timeout). That the grace then starts
    again is the Rust test ``a_grace_that_ran_out_before_the_handle_starts_again``: which of
    the event and the handler's start comes first here is up to the threads."""
    from datetime import datetime, timedelta, timezone

    leased = Task._leased

    def slow_hand_over(cls: type[Task], server: Any, lease: Any) -> Task:
        time.sleep(0.5)  # longer than the grace below
        return leased(server, lease)

    monkeypatch.setattr(Task, "_leased", classmethod(slow_hand_over))

    async def stubborn(task: Task) -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    past = datetime.now(timezone.utc) - timedelta(hours=1)
    info = client.enqueue(Task("t"), deadline=past, max_retry=1)
    make_server(cancel_grace=0.1).start(mux_of({"t": stubborn}))
    wait_until(lambda: state(r, info.id) == "retry", timeout=15)
    assert msg(r, info.id)["error_msg"] == "context deadline exceeded"


def test_a_handler_that_returns_after_swallowing_its_cancel_has_failed(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    async def quitter(task: Task) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return  # swallowed: the work was not done

    info = client.enqueue(Task("t"), timeout=1, max_retry=1)
    make_server().start(mux_of({"t": quitter}))
    wait_until(lambda: state(r, info.id) == "retry")
    assert msg(r, info.id)["error_msg"] == "context deadline exceeded"
    assert counter(r, "asynq:{default}:failed") == 1, "counted as a failed run, not a success"
