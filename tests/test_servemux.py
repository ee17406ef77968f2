"""ServeMux routing and middleware (pure logic), and middleware running inside a real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
import redis

from ferroq import (
    Client,
    Handler,
    HandlerNotFoundError,
    InvalidArgumentError,
    ServeMux,
    Server,
    Task,
)
from util import wait_until


def recorder(name: str, log: list[str]) -> Callable[[Task], None]:
    def handle(task: Task) -> None:
        log.append(name)

    return handle


@pytest.mark.parametrize(
    ("task_type", "want"),
    [
        ("email", "email"),
        ("email:welcome", "email:"),
        ("email:welcome:vip", "email:welcome:"),
        ("email:welcome:", "email:welcome:"),
        ("image:resize", "image"),
        ("emai", None),
        ("", None),
    ],
)
def test_exact_match_then_longest_prefix(task_type: str, want: str | None) -> None:
    log: list[str] = []
    mux = ServeMux()
    for pattern in ("email", "email:", "email:welcome:", "image"):
        mux.handle(pattern, recorder(pattern, log))
    h = mux.match(task_type)
    if want is None:
        assert h is None
        return
    assert h is not None
    h(Task("x"))
    assert log == [want]


def test_unmatched_type_raises_handler_not_found() -> None:
    mux = ServeMux()
    with pytest.raises(HandlerNotFoundError, match='handler not found for task "nope"'):
        mux(Task("nope"))


def test_custom_not_found_handler() -> None:
    log: list[str] = []
    mux = ServeMux()
    mux.not_found_handler(recorder("fallback", log))
    mux(Task("anything"))
    assert log == ["fallback"]


def test_decorator_form_returns_the_function() -> None:
    mux = ServeMux()

    @mux.handle("t")
    def handle(task: Task) -> None:
        pass

    assert mux.match("t") is handle


@pytest.mark.parametrize("pattern", ["", "   "])
def test_blank_pattern_is_rejected(pattern: str) -> None:
    with pytest.raises(InvalidArgumentError):
        ServeMux().handle(pattern, lambda t: None)


def test_duplicate_pattern_is_rejected() -> None:
    mux = ServeMux()
    mux.handle("t", lambda t: None)
    with pytest.raises(InvalidArgumentError, match="already registered"):
        mux.handle("t", lambda t: None)


def test_non_callable_handler_is_rejected() -> None:
    with pytest.raises(TypeError):
        ServeMux().handle("t", cast(Handler, 42))


def test_middleware_wraps_in_registration_order() -> None:
    log: list[str] = []

    def mw(name: str) -> Callable[[Handler], Handler]:
        def wrap(next_: Handler) -> Handler:
            def run(task: Task) -> None:
                log.append(f"{name}>")
                next_(task)
                log.append(f"<{name}")

            return run

        return wrap

    mux = ServeMux()
    mux.handle("t", recorder("handler", log))
    mux.use(mw("a"), mw("b"))
    mux.use(mw("c"))
    mux(Task("t"))
    assert log == ["a>", "b>", "c>", "handler", "<c", "<b", "<a"]


def test_middleware_added_later_applies_to_cached_routes() -> None:
    log: list[str] = []
    mux = ServeMux()
    mux.handle("t", recorder("handler", log))
    mux(Task("t"))

    def tag(next_: Handler) -> Handler:
        def run(task: Task) -> None:
            log.append("mw")
            next_(task)

        return run

    mux.use(tag)
    mux(Task("t"))
    assert log == ["handler", "mw", "handler"]


def test_async_middleware_and_sync_wrappers_run_in_a_server(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def sync_mw(next_: Handler) -> Handler:
        # A sync wrapper around an async handler returns its awaitable: the server awaits it.
        def run(task: Task) -> Awaitable[None] | None:
            with lock:
                seen.append(f"sync:{task.type}")
            return next_(task)

        return cast(Handler, run)

    def async_mw(next_: Handler) -> Handler:
        async def run(task: Task) -> None:
            with lock:
                seen.append(f"async:{task.type}")
            out = next_(task)
            if out is not None:
                await out

        return run

    mux = ServeMux()

    @mux.handle("a")
    async def handle_a(task: Task) -> None:
        await asyncio.sleep(0)
        with lock:
            seen.append("ran:a")

    @mux.handle("s")
    def handle_s(task: Task) -> None:
        with lock:
            seen.append("ran:s")

    mux.use(sync_mw, async_mw)
    client.enqueue(Task("a"))
    client.enqueue(Task("s"))
    srv = Server(redis_url, task_check_interval=0.05)
    try:
        srv.start(mux)
        wait_until(lambda: r.get("asynq:{default}:processed") == b"2")
    finally:
        srv.shutdown()
    assert sorted(seen) == sorted(["sync:a", "async:a", "ran:a", "sync:s", "async:s", "ran:s"])
    assert r.get("asynq:{default}:failed") is None


def test_a_route_changed_while_serving_is_dispatched_by_its_new_kind(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    # The dispatcher caches each route with whether it is async: a middleware added while the
    # server runs must start the next tasks of a cached sync route as asyncio tasks of their own
    # (a stale "sync" would run the wrapper's coroutine from a worker thread instead).
    own_task: list[bool] = []

    def runs_as_its_own_asyncio_task(task: Task) -> bool:
        try:
            current = asyncio.current_task()
        except RuntimeError:  # no running loop: a worker thread
            return False
        return current is not None and task._asyncio_task is current

    mux = ServeMux()

    @mux.handle("t")
    def handle(task: Task) -> None:
        own_task.append(runs_as_its_own_asyncio_task(task))

    def async_mw(next_: Handler) -> Handler:
        async def run(task: Task) -> None:
            own_task.append(runs_as_its_own_asyncio_task(task))
            next_(task)

        return run

    srv = Server(redis_url, task_check_interval=0.05)
    try:
        srv.start(mux)
        client.enqueue(Task("t"))
        wait_until(lambda: r.get("asynq:{default}:processed") == b"1")
        mux.use(async_mw)
        client.enqueue(Task("t"))
        wait_until(lambda: r.get("asynq:{default}:processed") == b"2")
    finally:
        srv.shutdown()
    # First a sync run on a worker thread; then the middleware as the task's asyncio task, and
    # the sync handler it calls there.
    assert own_task == [False, True, True]


class EverythingToOne(ServeMux):
    """A ServeMux whose ``resolve`` is overridden: the dispatcher must still ask it."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self._one = handler

    def resolve(self, task_type: str) -> Handler:
        return self._one


def test_a_servemux_that_overrides_resolve_is_asked_for_every_task(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    seen: list[str] = []

    async def one(task: Task) -> None:
        seen.append(task.type)

    client.enqueue(Task("a"))
    client.enqueue(Task("b"))
    srv = Server(redis_url, task_check_interval=0.05)
    try:
        srv.start(EverythingToOne(one))
        wait_until(lambda: r.get("asynq:{default}:processed") == b"2")
    finally:
        srv.shutdown()
    assert sorted(seen) == ["a", "b"]
    assert r.get("asynq:{default}:failed") is None


class Unreadable:
    """A callable whose ``__call__`` attribute cannot be read: asking if it is async raises."""

    def __getattribute__(self, name: str) -> object:
        if name == "__call__":
            raise RuntimeError("no __call__ to read here")
        return object.__getattribute__(self, name)

    def __call__(self, task: Task) -> None:
        pass


def test_a_handler_inspect_cannot_read_fails_its_tasks_not_the_start(
    client: Client, r: redis.Redis, redis_url: str
) -> None:
    info = client.enqueue(Task("t"), max_retry=0)
    srv = Server(redis_url, task_check_interval=0.05)
    try:
        srv.start(Unreadable())  # starts: the error belongs to the task
        wait_until(lambda: r.get("asynq:{default}:failed") == b"1")
    finally:
        srv.shutdown()
    assert r.hget(f"asynq:{{default}}:t:{info.id}", "state") == b"archived"
