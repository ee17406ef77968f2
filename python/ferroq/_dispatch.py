"""Running user code for the tasks the core leases.

Dispatch, the two runners (a thread pool, an asyncio loop), outcomes, and the events
(deadlines, cancellations) the core sends.

The core keeps the one in-flight table; a running task's ``Task`` object rides in it as its
handle, so a cancellation arrives here as the ``Task`` itself, and nothing on this side scans
running tasks. Rules about outcomes (retry or archive, retries left, the default delay) are the
core's; this module asks the user's hooks (``is_failure``, ``retry_delay``, ``error_handler``)
only where they were given.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from ferroq._native import CancelReason, NativeServer, Outcome, TaskInfo, will_retry
from ferroq._options import Duration
from ferroq._pool import WorkerPool
from ferroq.errors import (
    DeadlineExceeded,
    FerroqError,
    LeaseExpired,
    Retry,
    RevokeTask,
    SkipRetry,
    TaskCancelled,
)
from ferroq.servemux import Handler, ServeMux, is_async
from ferroq.task import Task

log = logging.getLogger("ferroq.server")
task_log = logging.getLogger("ferroq.task")
"""Every failed attempt: WARNING when it will be retried, ERROR when it is archived, with the
task's id, type, queue, attempt and the traceback (never the payload). Configure it like any
logger (its level, handlers, or ``propagate``) to route or silence these lines."""

RetryDelay = Callable[[int, BaseException, Task], Duration]
"""``retry_delay(retried, error, task)``: how long to wait before the next attempt."""
IsFailure = Callable[[BaseException], bool]
"""``is_failure(error)``: False retries without counting an attempt (asynq's ``IsFailure``)."""
ErrorHandler = Callable[[Task, BaseException], None]
"""``error_handler(task, error)``: called for every error a handler raised."""

_DONE = Outcome.done()
_REVOKE = Outcome.revoke()
_REQUEUE = Outcome.requeue()


def error_text(exc: BaseException) -> str:
    """The error text stored with a failed task: ferroq's own errors bare, others with the type."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not lose the outcome
        text = ""
    name = type(exc).__name__
    if isinstance(exc, FerroqError):
        return text or name
    return f"{name}: {text}" if text else name


MAX_TRACEBACK = 32 * 1024
"""Most characters of traceback kept with an archived task (the innermost frames are kept)."""


def type_name(exc: BaseException) -> str:
    """``module.QualName`` of ``exc``'s type (``builtins.ValueError``)."""
    t = type(exc)
    return f"{t.__module__}.{t.__qualname__}"


def exception_detail(exc: BaseException) -> bytes:
    """``exc`` as the JSON kept in an archived task's ``exception`` field (docs/tasks.md)."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the outcome
        message = ""
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        tb = ""
    if len(tb) > MAX_TRACEBACK:
        tb = "...\n" + tb[-MAX_TRACEBACK:]
    detail = {"type": type_name(exc), "message": message, "traceback": tb}
    # A lone surrogate (from a bytes-decoding error message) must not lose the outcome.
    return json.dumps(detail, ensure_ascii=False).encode("utf-8", "backslashreplace")


class FailurePolicy:
    """The user's hooks applied to an error: how the run ends, and the log line it leaves.

    The rules (retries left, ``SkipRetry``, the default delay) are the core's; this asks the
    hooks only where they were given. One policy serves a handler's errors and the failures the
    core finds outside handlers (a task recovered after its lease expired).

    Args:
        retry_delay: The user's ``retry_delay`` hook, if any.
        is_failure: The user's ``is_failure`` hook, if any.
        error_handler: The user's ``error_handler`` hook, if any.
    """

    def __init__(
        self,
        retry_delay: RetryDelay | None = None,
        is_failure: IsFailure | None = None,
        error_handler: ErrorHandler | None = None,
    ) -> None:
        self._retry_delay = retry_delay
        self._is_failure = is_failure
        self._error_handler = error_handler

    def outcome(self, task: Task, exc: BaseException | None) -> Outcome:
        """How a run of ``task`` that raised ``exc`` (None: returned) ends."""
        if exc is None:
            return _DONE if task._result is None else Outcome.done(task._result)
        if isinstance(exc, RevokeTask):
            task_log.info("task %s (%s) revoked: %s", task.id, task.type, exc)
            return _REVOKE
        return self.failure(task, exc)

    def failure(self, task: Task, exc: BaseException, *, handler_error: bool = True) -> Outcome:
        """The failure outcome for ``exc``.

        A handler's error (``handler_error``) is logged here (a failing task is never silent)
        and goes to ``error_handler``, as asynq's ``ErrorHandler``; ``is_failure`` and
        ``retry_delay`` decide every failure. A failure outside a handler (a recovery) is
        logged by the core once its write succeeded, by the one server whose write won.
        """
        text = error_text(exc)
        if handler_error and self._error_handler is not None:
            try:
                self._error_handler(task, exc)
            except BaseException:
                log.exception("error_handler raised")
        rule = task._retry_rule
        skip = isinstance(exc, SkipRetry) or (rule is not None and not rule.retry)
        try:
            failure = bool(self._is_failure(exc)) if self._is_failure else True
        except Exception:
            log.exception("is_failure raised; counting the error as a failure")
            failure = True
        retry = will_retry(task.retry_count, task.max_retry, skip, failure)
        if handler_error:
            self._log(task, exc, text, retry)
        if not retry:
            detail = exception_detail(exc) if handler_error else None
            return Outcome.failure(text, skip_retry=True, detail=detail)
        # The most specific delay wins: the task's Retry, its retry policy, the server's hook.
        delay: Duration | None = None
        if isinstance(exc, Retry) and exc.delay is not None:
            delay = exc.delay
        elif rule is not None and rule.delay is not None:
            delay = rule.delay
        elif self._retry_delay is not None:
            try:
                delay = self._retry_delay(task.retry_count, exc, task)
            except Exception:
                log.exception("retry_delay failed; using the default delay")
        try:
            return Outcome.failure(text, is_failure=failure, retry_delay=delay)
        except Exception:
            log.exception("retry delay %r refused; using the default delay", delay)
            return Outcome.failure(text, is_failure=failure)

    def recovered(self, info: TaskInfo, error: str) -> Outcome:
        """The failure of a task recovered after its lease expired.

        The core calls it from its recoverer thread, for a task with retries left, on every
        server that finds the task expired (only one write wins): hooks should be quick and
        free of side effects.
        """
        return self.failure(Task._from_info(info), LeaseExpired(error), handler_error=False)

    @staticmethod
    def _log(task: Task, exc: BaseException, text: str, retry: bool) -> None:
        # Deadlines, cancellations, lost leases and asked-for retries have no traceback worth
        # showing.
        quiet = isinstance(exc, (DeadlineExceeded, TaskCancelled, LeaseExpired, Retry))
        task_log.log(
            logging.WARNING if retry else logging.ERROR,
            "task %s (type %s, queue %s) failed, attempt %d of %d: %s; %s",
            task.id, task.type, task.queue, task.retry_count + 1, task.max_retry + 1, text,
            "it will be retried" if retry else "archived",
            exc_info=None if quiet else exc,
        )  # fmt: skip


class Dispatcher:
    """Starts handlers for leased tasks and reports how each run ended.

    Args:
        native: The core.
        handler: A ``ServeMux`` or a handler.
        pool_size: Threads for sync handlers.
        policy: How errors end a run (the user's hooks).
    """

    def __init__(
        self,
        native: NativeServer,
        handler: ServeMux | Handler,
        *,
        pool_size: int,
        policy: FailurePolicy,
    ) -> None:
        self._native = native
        self._route = _router(handler)
        self._batch = native.config.concurrency
        self._policy = policy
        # Guards each task's "reported" flag: the first report of a run wins.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._pool = WorkerPool(pool_size, "ferroq-worker")
        self._loop = asyncio.new_event_loop()
        self._async_tasks: set[asyncio.Task[None]] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Starts the event loop, the dispatcher and the event consumer threads."""
        for name, target in (
            ("ferroq-asyncio", self._run_loop),
            ("ferroq-dispatcher", self._dispatch_loop),
            ("ferroq-events", self._event_loop),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop_dispatching(self) -> None:
        """Stops taking leased tasks and waits for the dispatcher: nothing new starts after."""
        self._stopping.set()
        for t in self._threads:
            if t.name == "ferroq-dispatcher":
                t.join(timeout=5)

    def abandon(self, tasks: list[Task]) -> None:
        """Tells the handlers of tasks requeued at shutdown to stop; their outcomes are dropped."""
        for task in tasks:
            if not self._claim(task):
                continue  # it ended (its outcome is on its way) just before the requeue
            log.warning("requeueing task %s: still running at shutdown", task.id)
            self._cancel(task, TaskCancelled())

    def close(self) -> None:
        """Stops the event loop and the threads (after the core shut down)."""
        self._closed.set()
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(timeout=5)
        self._pool.shutdown()

    # ---- dispatch ------------------------------------------------------------------------

    def _run_loop(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                # Bounded: a handler that swallows its cancellation must not hang shutdown.
                grace = self._native.config.cancel_grace
                loop.run_until_complete(asyncio.wait(pending, timeout=grace))
            loop.close()

    def _dispatch_loop(self) -> None:
        native, start = self._native, self._start
        wrap = functools.partial(Task._leased, native)  # one frame fewer per task than a method
        while not self._stopping.is_set():
            try:
                tasks: list[Task] = native.next_batch(self._batch, 0.1, wrap)
            except BaseException:  # a panic in the core arrives as a BaseException
                log.exception("fetching leased tasks failed")
                time.sleep(0.1)
                continue
            if self._stopping.is_set():
                # Shutdown began while these were on their way: give them straight back (and
                # claim them, so no late event reports them as failed).
                for task in tasks:
                    if self._claim(task):
                        native.finish(task._token, _REQUEUE)
                break
            async_batch: list[tuple[Handler, Task]] = []
            for task in tasks:
                start(task, async_batch)
            if async_batch:
                self._start_async(async_batch)

    def _start(self, task: Task, async_batch: list[tuple[Handler, Task]]) -> None:
        lease = task._lease
        if lease is not None and lease.expired:
            # Its deadline passed before it was leased: asynq never starts such a handler.
            self._report(task, DeadlineExceeded())
            return
        try:
            h, asynchronous = self._route(task.type)
            if asynchronous:
                async_batch.append((h, task))
            else:
                self._pool.submit(self._run_sync, h, task)
        except BaseException as exc:  # a bad resolver or a closed pool must not lose the task
            self._report(task, exc)

    def _start_async(self, batch: list[tuple[Handler, Task]]) -> None:
        """Hands a whole batch to the event loop with one wake-up of the loop."""
        loop = self._loop

        def spawn() -> None:
            for h, task in batch:
                t = loop.create_task(self._run_async(h, task))
                # The loop keeps only weak references to tasks.
                self._async_tasks.add(t)
                t.add_done_callback(self._async_tasks.discard)

        try:
            loop.call_soon_threadsafe(spawn)
        except BaseException as exc:  # the loop is closed: shutdown raced the dispatch
            for _, task in batch:
                self._report(task, exc)

    def _run_sync(self, h: Handler, task: Task) -> None:
        if task._reported:
            return  # failed at its deadline (or cancelled) while it waited for a thread
        try:
            out = h(task)
            if out is not None and hasattr(out, "__await__"):
                # A sync wrapper around an async handler: run it on the loop and wait here.
                asyncio.run_coroutine_threadsafe(_await(out), self._loop).result()
        except BaseException as exc:
            self._report(task, exc)
        else:
            self._report(task, None)

    async def _run_async(self, h: Handler, task: Task) -> None:
        task._asyncio_task = asyncio.current_task()
        if task._cancel_error is not None:  # cancelled before it started
            self._report(task, task._cancel_error)
            return
        try:
            out = h(task)
            if out is not None:
                await out
        except asyncio.CancelledError:
            self._report(task, task._cancel_error or TaskCancelled())
        except BaseException as exc:
            self._report(task, exc)
        else:
            # A handler that swallowed its cancellation and returned did not finish its work:
            # the run failed with the reason it was stopped, as in asynq.
            self._report(task, task._cancel_error)

    # ---- outcomes ------------------------------------------------------------------------

    def _claim(self, task: Task) -> bool:
        """Marks the run reported; False when it was already (the first report wins)."""
        with self._lock:
            if task._reported:
                return False
            task._reported = True
            return True

    def _report(self, task: Task, exc: BaseException | None) -> None:
        # A deadline may have failed the task while its handler still ran: the first wins.
        if not self._claim(task):
            return
        try:
            try:
                outcome = self._outcome(task, exc)
            except BaseException:
                log.exception("deciding the outcome of task %s failed; retrying it", task.id)
                outcome = Outcome.failure("ferroq: the outcome could not be decided")
            self._native.finish(task._token, outcome)
        except BaseException:
            log.exception("reporting the outcome of task %s failed", task.id)

    def _outcome(self, task: Task, exc: BaseException | None) -> Outcome:
        return self._policy.outcome(task, exc)

    # ---- events from the core ------------------------------------------------------------

    def _cancel(self, task: Task, why: BaseException) -> None:
        """Tells a handler to stop, once: a second cancel would break its cleanup code."""
        if task._cancel_error is not None:
            return
        task._cancel_error = why
        task._mark_cancelled()
        t, loop = task._asyncio_task, self._loop
        if t is not None and not loop.is_closed():
            loop.call_soon_threadsafe(t.cancel)

    def _event_loop(self) -> None:
        while not self._closed.is_set():
            try:
                for task, why in self._native.cancellations(0.1):
                    self._on_event(task, why)
            except BaseException:  # the consumer must outlive anything a handler does
                log.exception("handling a cancellation failed")
                time.sleep(0.05)

    def _on_event(self, task: Task, why: CancelReason) -> None:
        if why == CancelReason.UNRESPONSIVE:
            # Told to stop, the handler still runs: fail its task without it.
            self._report(task, task._cancel_error or TaskCancelled())
            return
        err = DeadlineExceeded() if why == CancelReason.DEADLINE_EXCEEDED else TaskCancelled()
        self._cancel(task, err)
        if task._asyncio_task is None:
            # A sync handler cannot be interrupted: it was told through task.cancelled, and its
            # task fails now; whatever it returns later is ignored.
            self._report(task, task._cancel_error)


def _router(handler: ServeMux | Handler) -> Callable[[str], tuple[Handler, bool]]:
    """How the dispatcher finds a task type's handler, and whether that handler is async.

    ``inspect`` answering the second costs more than the lookup, so it is asked once per route:
    a ServeMux caches it with the route, a plain handler is asked once here. A ServeMux whose
    ``resolve`` is overridden, or a handler ``inspect`` cannot read, is asked for every task as
    it always was (the error then fails that task, as any handler's would, not the start).
    """
    if isinstance(handler, ServeMux):
        if type(handler).resolve is ServeMux.resolve:
            return handler._route
        mux = handler

        def resolve(task_type: str) -> tuple[Handler, bool]:
            h = mux.resolve(task_type)
            return h, is_async(h)

        return resolve
    plain = handler
    try:
        route = (plain, is_async(plain))
    except Exception:
        return lambda _type: (plain, is_async(plain))
    return lambda _type: route


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw
