"""Task functions (``ferroq.App``): calls, the wire format, results, errors and retry rules.

Every test runs a real server on a real Redis (and Valkey); redis-py observes what lands there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
import redis

import ferroq
from client_helpers import stored, task_hash, task_key
from ferroq import (
    App,
    Client,
    MalformedMessageError,
    RemoteTaskError,
    ResultTimeoutError,
    ResultUnavailableError,
    Retry,
    RetryPolicy,
    Server,
    Task,
    TaskNotFoundError,
)
from util import wait_until


def in_retry(h: ferroq.TaskHandle[Any]) -> ferroq.TaskInfo:
    """The task's info once it waits for a retry."""

    def check() -> ferroq.TaskInfo | None:
        i = h.info()
        return i if i.state == ferroq.TaskState("retry") else None

    return wait_until(check)


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_delay_runs_the_function_and_get_returns_its_result(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    serve()
    h = add.delay(2, y=3)
    assert h.get(timeout=10) == 5
    assert add(4, 5) == 9, "calling the task runs it here"
    # asynq's layout: the type is the task's name, the result in the hash's result field.
    assert add.name == f"{__name__}.add"
    fields = task_hash(r, h.id)
    assert fields["result"] == b"5" and fields["state"] == b"completed"
    msg = stored(r, h.id)
    assert msg["type"] == add.name
    assert json.loads(msg["payload"]) == {"args": [2], "kwargs": {"y": 3}}
    assert msg["retention"] == 86400, "results are kept a day by default"
    assert h.state == ferroq.TaskState("completed") and h.ready() and h.result == 5


def test_async_tasks_and_awaited_handles(app: App, serve: Callable[..., Server]) -> None:
    @app.task
    async def mul(x: int, y: int) -> int:
        await asyncio.sleep(0.005)
        return x * y

    serve()

    async def main() -> list[int]:
        return list(await asyncio.gather(*(mul.delay(i, 2) for i in range(50))))

    assert asyncio.run(main()) == [i * 2 for i in range(50)]
    assert asyncio.run(mul(3, 4)) == 12


def test_a_plain_client_can_call_a_task_function(
    app: App, serve: Callable[..., Server], redis_url: str
) -> None:
    """The wire format is all a Go (or any) producer needs: JSON args and kwargs."""

    @app.task(name="math:add")
    def add(x: int, y: int = 10) -> int:
        return x + y

    serve()
    with Client(redis_url) as c:
        only_kwargs = c.enqueue(Task("math:add", b'{"kwargs": {"x": 1}}'), retention=60)
        no_payload = c.enqueue(Task("math:add", b'{"args": [1, 2]}'), retention=60)
    assert add.handle(only_kwargs.id).get(timeout=10) == 11
    assert add.handle(no_payload.id).get(timeout=10) == 3


def test_msgpack_codec_and_typed_arguments_and_results(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task(codec="msgpack")
    def shift(p: Point, by: timedelta, at: datetime) -> Point:
        assert isinstance(p, Point) and isinstance(at, datetime)
        return Point(p.x + int(by.total_seconds()), p.y)

    serve()
    at = datetime(2026, 1, 2, tzinfo=timezone.utc)
    h = shift.delay(Point(1, 2), by=timedelta(seconds=5), at=at)
    out = h.get(timeout=10)
    assert out == Point(6, 2), "the result is converted back into the return annotation"
    msg = stored(r, h.id)
    assert msg["headers"] == {"content-type": "application/msgpack"}
    assert msgspec.msgpack.decode(msg["payload"])["args"] == [{"x": 1, "y": 2}]


def test_a_failure_reraises_the_remote_exception_with_its_traceback(
    app: App, serve: Callable[..., Server], r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(max_retry=0)
    def fail(why: str) -> None:
        raise KeyError(why)

    serve()
    h = fail.delay("nope")
    with pytest.raises(KeyError) as ei:
        h.get(timeout=10)
    e = ei.value
    assert isinstance(e, RemoteTaskError)
    assert e.type_name == "builtins.KeyError" and e.message == "'nope'"
    assert "raise KeyError(why)" in e.traceback and e.task_id == h.id
    detail = json.loads(task_hash(r, h.id)["exception"])
    assert detail["type"] == "builtins.KeyError" and "Traceback" in detail["traceback"]
    assert stored(r, h.id)["error_msg"] == "KeyError: 'nope'", "asynq's error text"
    with pytest.raises(KeyError):
        _ = h.result
    assert any("failed" in rec.message and h.id in rec.message for rec in caplog.records)


def archived_value_error(app: App, serve: Callable[..., Server]) -> ferroq.TaskHandle[None]:
    """A task that failed for good with ``ValueError("x")``, its handle."""

    @app.task(max_retry=0)
    def fail() -> None:
        raise ValueError("x")

    serve()
    h = fail.delay()
    with pytest.raises(ValueError):
        h.get(timeout=10)
    return h


def test_an_unknown_exception_type_is_a_plain_remote_error(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    h = archived_value_error(app, serve)
    # A record naming a type this process does not have (nothing is imported to find it).
    detail = {"type": "nowhere.Boom", "message": "m", "traceback": "tb"}
    r.hset(task_key(h.id), "exception", json.dumps(detail))
    with pytest.raises(RemoteTaskError) as ei:
        h.get(timeout=10)
    assert type(ei.value) is RemoteTaskError and ei.value.type_name == "nowhere.Boom"
    assert ei.value.traceback == "tb"
    r.hset(task_key(h.id), "exception", b"\xff not json")
    with pytest.raises(ValueError):  # falls back to the message's "ValueError: x"
        h.get(timeout=10)


def test_autoretry_for_and_dont_autoretry_for(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task(autoretry_for=[ConnectionError], max_retry=5)
    def only_io(kind: str) -> None:
        raise (ConnectionError if kind == "io" else ValueError)(kind)

    @app.task(dont_autoretry_for=[PermissionError], max_retry=5)
    def never_perm() -> None:
        raise PermissionError("no")

    serve()
    other = only_io.delay("value")
    with pytest.raises(ValueError):
        other.get(timeout=10)
    assert other.info().retried == 0, "not in autoretry_for: archived at once"
    perm = never_perm.delay()
    with pytest.raises(PermissionError):
        perm.get(timeout=10)
    assert perm.info().retried == 0
    io = only_io.delay("io")
    info = in_retry(io)
    assert info.retried == 1 and info.last_error == "ConnectionError: io"


def test_retry_policy_and_retry_delay_schedule_the_next_attempt(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task(retry=RetryPolicy(delay=100, backoff=2, jitter=False))
    def backoff() -> None:
        raise OSError("later")

    @app.task(retry=RetryPolicy(delay=100, jitter=False))
    def asks() -> None:
        raise Retry(delay=timedelta(seconds=1000), message="not yet")

    serve()
    t0 = time.time()
    a, b = backoff.delay(), asks.delay()
    for h, delay, err in ((a, 100, "OSError: later"), (b, 1000, "not yet")):
        info = in_retry(h)
        score = r.zscore("asynq:{default}:retry", h.id)
        assert score is not None and t0 + delay - 1 <= score <= time.time() + delay + 1
        assert info.last_error == err


@pytest.mark.parametrize(
    ("policy", "retried", "low", "high"),
    [
        (RetryPolicy(delay=1, backoff=2, jitter=False), 0, 1, 1),
        (RetryPolicy(delay=1, backoff=2, jitter=False), 3, 8, 8),
        (RetryPolicy(delay=1, backoff=2, max_delay=5, jitter=False), 10, 5, 5),
        (RetryPolicy(delay=1, backoff=2, max_delay=5, jitter=False), 10_000, 5, 5),
        (RetryPolicy(delay=4, backoff=1), 7, 2, 4),
        (RetryPolicy(delay=0), 3, 0, 0),
    ],
)
def test_retry_policy_delays(policy: RetryPolicy, retried: int, low: float, high: float) -> None:
    for _ in range(50):
        assert low <= policy.delay_for(retried) <= high


@pytest.mark.parametrize(
    "kwargs",
    [{"delay": -1}, {"delay": float("nan")}, {"backoff": 0.5}, {"max_delay": float("inf")},
     {"delay": True}],
)  # fmt: skip
def test_a_bad_retry_policy_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ferroq.InvalidArgumentError):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "cannot be decoded"),
        (b"[1, 2]", "not an object"),
        (b'{"args": {"x": 1}}', "args must be an array"),
        (b'{"args": ["x", 2]}', "argument 'x'"),
        (b'{"args": [1, 2, 3]}', "TypeError"),
        (b'{"kwargs": {"x": 1, "y": 2, "z": 3}}', "TypeError"),
    ],
)
def test_a_malformed_call_is_archived_at_once_with_the_reason(
    app: App, serve: Callable[..., Server], redis_url: str, payload: bytes, why: str
) -> None:
    ran: list[int] = []

    @app.task(name="typed", max_retry=5)
    def typed(x: datetime, y: int) -> None:
        ran.append(1)

    serve()
    with Client(redis_url) as c:
        info = c.enqueue(Task("typed", payload), max_retry=5, retention=60)
    h = typed.handle(info.id)
    with pytest.raises(RemoteTaskError) as ei:
        h.get(timeout=10)
    assert why in str(ei.value) or why in ei.value.type_name
    assert h.info().retried == 0 and not ran
    if why in ("cannot be decoded", "not an object", "argument 'x'"):
        assert isinstance(ei.value, MalformedMessageError)


def test_a_result_the_codec_cannot_encode_archives_the_task(
    app: App, serve: Callable[..., Server]
) -> None:
    @app.task(max_retry=5)
    def weird() -> object:
        return object()

    serve()
    h = weird.delay()
    with pytest.raises(TypeError, match="cannot encode"):
        h.get(timeout=10)
    assert h.info().retried == 0


def test_an_argument_the_codec_cannot_encode_fails_at_the_call(app: App) -> None:
    @app.task
    def f(x: object) -> None: ...

    with pytest.raises(TypeError, match="cannot encode a object"):
        f.delay(object())


def test_call_options_countdown_eta_queue_task_id_expires(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    ran: list[str] = []

    @app.task(queue="low")
    def note(what: str) -> str:
        ran.append(what)
        return what

    later = note.apply_async(("later",), countdown=3600)
    assert later.info().state == ferroq.TaskState("scheduled")
    eta = datetime.now(timezone.utc) + timedelta(hours=2)
    at = note.with_options(eta=eta, task_id="fixed-id").delay("eta")
    assert at.id == "fixed-id" and at.info().next_process_at is not None
    moved = note.apply_async(kwargs={"what": "moved"}, queue="high")
    assert moved.queue == "high"
    stale = note.apply_async(("stale",), expires=0.2)
    time.sleep(0.3)
    serve(queues={"low": 1, "high": 1})
    assert moved.get(timeout=10) == "moved"
    wait_until(lambda: not r.exists(task_key(stale.id, "low")))
    assert "stale" not in ran, "an expired call is dropped without running"
    with pytest.raises(TypeError, match="unknown call option"):
        note.apply_async(("x",), priority=3)  # type: ignore[call-arg]
    with pytest.raises(ferroq.InvalidArgumentError):
        note.apply_async(("x",), countdown=5, eta=eta)


def test_waiting_timeouts_missing_results_and_gone_tasks(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task
    def slow() -> int:
        time.sleep(0.5)
        return 1

    @app.task(ignore_result=True)
    def fire() -> None: ...

    @app.task
    def revoked() -> None:
        raise ferroq.RevokeTask("no")

    with pytest.raises(ResultUnavailableError):
        fire.delay().get()
    h = slow.delay()
    with pytest.raises(ResultTimeoutError):
        h.get(timeout=0.05)
    serve()
    assert h.get(timeout=10) == 1
    with pytest.raises(TaskNotFoundError):
        revoked.delay().get(timeout=10)

    async def timed_out() -> None:
        with pytest.raises(ResultTimeoutError):
            await slow.delay().wait(timeout=0.05)

    asyncio.run(timed_out())


def test_thousands_of_waiters_share_one_subscription(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    @app.task
    async def echo(i: int) -> int:
        return i

    async def main() -> list[int]:
        handles = [echo.delay(i) for i in range(2000)]
        waits = [asyncio.ensure_future(h.wait(timeout=60)) for h in handles]
        # Every waiter watches before any task runs (the waiter subscribes as it gets to them).
        for _ in range(1000):
            subscribers = [c for c in r.client_list() if int(c.get("sub", 0)) > 0]
            if subscribers and int(subscribers[0]["sub"]) == 2001:
                break
            await asyncio.sleep(0.01)
        assert len(subscribers) == 1, subscribers
        assert int(subscribers[0]["sub"]) == 2001, "one channel per task, and the wake channel"
        waiter.append(subscribers[0]["id"])
        serve()
        return list(await asyncio.gather(*waits))

    waiter: list[str] = []
    assert asyncio.run(main()) == list(range(2000))

    def channels() -> int:
        return next(int(c["sub"]) for c in r.client_list() if c["id"] == waiter[0])

    # Every channel but the wake channel is given up once its task ended.
    wait_until(lambda: channels() == 1)


def test_a_task_name_is_registered_once(app: App) -> None:
    @app.task(name="dup")
    def a() -> None: ...

    with pytest.raises(ferroq.InvalidArgumentError, match="already registered"):

        @app.task(name="dup")
        def b() -> None: ...


def test_app_queues_for_the_worker(app: App) -> None:
    @app.task(queue="mail")
    def a() -> None: ...

    assert app.queues == {"default": 1, "mail": 1}
    assert App(queues={"x": 3}).queues == {"x": 3}


def test_waits_one_after_another_are_each_woken(app: App, serve: Callable[..., Server]) -> None:
    """A watch added while the waiter thread is busy is picked up without its recheck (5 s)."""

    @app.task
    def echo(i: int) -> int:
        return i

    serve()
    first = echo.delay(1)
    assert first.get(timeout=10) == 1
    for i in range(20):
        assert first.get(timeout=2) == 1, "an ended task is read at once"
        assert echo.delay(i).get(timeout=2) == i


def test_review_fixes_result_ttl_zero_short_timeouts_and_codecs(
    app: App, serve: Callable[..., Server], redis_url: str, r: redis.Redis
) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    @app.task(name="packed", codec="msgpack")
    def packed(x: int) -> dict[str, int]:
        return {"x": x}

    with pytest.raises(ResultUnavailableError):
        echo.apply_async((1,), result_ttl=0).get()
    serve()
    done = echo.delay(5)
    assert done.get(timeout=10) == 5
    for _ in range(20):
        assert done.get(timeout=0) == 5, "an ended task is read even with no time to wait"
    # Watches given up at once leave no subscription behind: the waiter keeps its wake channel
    # only, the server its cancel and wake channels.
    wait_until(lambda: sorted(int(c["sub"]) for c in r.client_list() if int(c["sub"])) == [1, 2])
    # A JSON call (no content-type, as a Go client writes it) to a msgpack task: JSON back.
    with Client(redis_url) as c:
        info = c.enqueue(Task("packed", b'{"args": [3]}'), retention=60)
    assert packed.handle(info.id).get(timeout=10) == {"x": 3}
    assert task_hash(r, info.id)["result"] == b'{"x":3}'


def test_a_remote_type_is_looked_up_statically(
    app: App, serve: Callable[..., Server], r: redis.Redis
) -> None:
    import sys
    import types

    calls: list[str] = []
    lazy = types.ModuleType("ferroq_lazy_test_module")

    def module_getattr(name: str) -> Any:
        calls.append(name)
        raise AttributeError(name)

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    sys.modules[lazy.__name__] = lazy
    try:
        h = archived_value_error(app, serve)
        for name in ("Lazy", "_private", "os.system"):
            detail = {"type": f"{lazy.__name__}.{name}", "message": "m", "traceback": ""}
            r.hset(task_key(h.id), "exception", json.dumps(detail))
            with pytest.raises(RemoteTaskError) as ei:
                h.get(timeout=10)
            assert type(ei.value) is RemoteTaskError
        assert calls == [], "a module's __getattr__ never runs for a name read from Redis"
    finally:
        del sys.modules[lazy.__name__]


def test_an_end_that_announces_nothing_is_found_by_the_recheck(
    app: App, redis_url: str, r: redis.Redis
) -> None:
    """An Inspector's delete publishes no notice: the waiter's recheck (every 5 s) finds it."""

    @app.task
    def never_served(i: int) -> int:
        return i

    handles = [never_served.delay(i) for i in range(3)]

    async def main() -> list[object]:
        waits = [asyncio.ensure_future(h.wait(timeout=30)) for h in handles]
        # Deleted only once the waiter watches all three: the recheck, not the first read,
        # must be what finds them.
        for _ in range(1000):
            if any(int(c["sub"]) == 4 for c in r.client_list()):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        with ferroq.Inspector(redis_url) as insp:
            insp.delete_task("default", handles[0].id)
            insp.archive_task("default", handles[1].id)
        _, pending = await asyncio.wait(waits[:2], timeout=20)
        waits[2].cancel()
        return [w.exception() for w in waits[:2]] + [len(pending)]

    gone, archived, pending = asyncio.run(main())
    assert isinstance(gone, TaskNotFoundError)
    assert isinstance(archived, RemoteTaskError), "archived by hand: a failure with asynq's text"
    assert pending == 0


class Outer:
    class NestedError(Exception):
        """A nested exception class: found by its module and qualified name."""


def test_short_waits_and_nested_exception_types(app: App, serve: Callable[..., Server]) -> None:
    @app.task
    def ok() -> int:
        return 1

    @app.task(max_retry=0)
    def nested() -> None:
        raise Outer.NestedError("deep")

    serve()
    h = ok.delay()
    assert h.get(timeout=10) == 1

    async def short() -> int:
        got: int = await h.wait(timeout=0.001)  # ended already: the last look finds it
        return got

    assert asyncio.run(short()) == 1
    with pytest.raises(Outer.NestedError) as ei:
        nested.delay().get(timeout=10)
    err = ei.value
    assert isinstance(err, RemoteTaskError) and err.type_name == f"{__name__}.Outer.NestedError"
    assert str(err) == "deep"
