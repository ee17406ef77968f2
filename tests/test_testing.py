"""``ferroq.testing``: the plugin's Redis fixture, ``drain`` and eager mode."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

import ferroq
from ferroq import App, RemoteTaskError, Task
from ferroq.testing import EagerHandle, drain, eager


def make_app(url: str | None) -> tuple[App, list[str]]:
    app = App(url, max_retry=1)
    ran: list[str] = []

    @app.task(name="note")
    def note(what: str) -> str:
        ran.append(what)
        if what == "bad":
            raise ValueError("bad")
        return what.upper()

    @app.task(name="anote", queue="other")
    async def anote(what: str) -> str:
        ran.append(what)
        return what[::-1]

    return app, ran


def test_the_plugin_fixture_is_a_flushed_private_redis(ferroq_redis_url: str) -> None:
    with ferroq.Client(ferroq_redis_url) as c:
        c.enqueue(Task("left:behind"))
    with ferroq.Inspector(ferroq_redis_url) as insp:
        assert insp.get_queue_info("default").pending == 1


def test_the_next_test_starts_empty(ferroq_redis_url: str) -> None:
    with ferroq.Inspector(ferroq_redis_url) as insp:
        assert insp.queues() == []


def test_drain_runs_what_is_queued_and_reports_it(ferroq_redis_url: str) -> None:
    app, ran = make_app(ferroq_redis_url)
    a = app.tasks["note"].delay("a")
    b = app.tasks["anote"].delay("b")
    app.tasks["note"].delay("bad")
    later = app.tasks["note"].apply_async(("later",), countdown=3600)
    report = drain(app)
    assert report.processed == 3 and report.failed == 1 and report.succeeded == 2
    assert a.get(timeout=1) == "A" and b.get(timeout=1) == "b"
    assert sorted(ran) == ["a", "b", "bad"], "the scheduled one was left for later"
    assert later.state == ferroq.TaskState("scheduled")
    assert drain(app).processed == 0, "nothing left to run"
    app.close()


def test_drain_runs_a_mux_too(ferroq_redis_url: str) -> None:
    mux = ferroq.ServeMux()
    seen: list[bytes] = []
    mux.handle("x", lambda t: seen.append(t.payload))
    with ferroq.Client(ferroq_redis_url) as c:
        for i in range(10):
            c.enqueue(Task("x", b"%d" % i))
    assert drain(mux, ferroq_redis_url).processed == 10
    assert len(seen) == 10


def test_eager_runs_calls_in_the_caller_without_redis() -> None:
    app, ran = make_app("redis://127.0.0.1:1")  # nothing listens there: nothing may connect
    with eager(app):
        h = app.tasks["note"].delay("x")
        assert isinstance(h, EagerHandle) and h.get() == "X" and h.ready()
        assert h.state == ferroq.TaskState("completed")
        failed = app.tasks["note"].delay("bad")
        assert failed.state == ferroq.TaskState("archived")
        with pytest.raises(ValueError) as ei:
            failed.get()
        assert isinstance(ei.value, RemoteTaskError) and "raise ValueError" in ei.value.traceback
        assert app.tasks["anote"].delay("abc").get() == "cba"
        with pytest.raises(TypeError, match="cannot encode"):
            app.tasks["note"].delay(object())
        with pytest.raises(ferroq.InvalidArgumentError):
            app.tasks["note"].delay("x").info()

        async def from_a_loop() -> str:
            got: str = await (await app.tasks["anote"].adelay("loop"))
            return got

        assert asyncio.run(from_a_loop()) == "pool"
    assert ran == ["x", "bad", "abc", "x", "loop"]


def test_eager_arguments_travel_through_the_codec() -> None:
    app = App("redis://127.0.0.1:1")

    @app.task
    def when(at: datetime) -> datetime:
        assert isinstance(at, datetime), "converted back, as a worker would"
        return at

    stamp = datetime(2026, 1, 1, 12, 0)
    with eager(app):
        assert when.delay(stamp).get() == stamp, "and the result into the return annotation"


def test_eager_settles_as_a_worker_would() -> None:
    app = App("redis://127.0.0.1:1")

    @app.task
    def steps(n: int) -> int:
        for i in range(n):
            ferroq.current_task().report_progress({"done": i + 1})
        return n

    @app.task
    def revoked() -> None:
        raise ferroq.RevokeTask("no")

    @app.task(ignore_result=True)
    def fire() -> int:
        return 1

    @app.task
    async def later() -> int:
        return 1

    with eager(app):
        h = steps.delay(3)
        assert h.get() == 3 and h.progress == {"done": 3}
        with pytest.raises(ferroq.TaskNotFoundError):
            revoked.delay().get()
        with pytest.raises(ferroq.TaskNotFoundError):
            _ = revoked.delay().state  # as a worker leaves it: no record
        with pytest.raises(ferroq.ResultUnavailableError):
            fire.delay().get()

        async def inside() -> None:
            with pytest.raises(ferroq.InvalidArgumentError, match="adelay"):
                later.delay()
            assert await (await later.adelay()) == 1

        asyncio.run(inside())
