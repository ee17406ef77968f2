"""The consumer: ``Server`` runs handlers for the tasks its Rust core leases.

The core (``ferroq._native.NativeServer``) owns Redis: it leases tasks in batches on its own
threads, renews leases, forwards scheduled tasks, recovers tasks of dead servers and writes
outcomes in batches. This module owns user code: one dispatcher thread pulls leased tasks and
starts each handler on a bounded thread pool (plain functions) or on one asyncio loop
(``async def``); a watchdog thread enforces deadlines and cancellations.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ferroq import _options
from ferroq._native import NativeServer
from ferroq._options import Duration
from ferroq._pool import WorkerPool
from ferroq.errors import RevokeTask, ServerClosedError, SkipRetry
from ferroq.servemux import Handler, ServeMux, is_async
from ferroq.task import Task

__all__ = ["DeadlineExceeded", "Server", "TaskCancelled"]

log = logging.getLogger("ferroq.server")

# Outcome codes understood by NativeServer.finish.
_DONE, _RETRY, _ARCHIVE, _REQUEUE, _REVOKE = 0, 1, 2, 3, 4
# How long an async handler may take to unwind after it was cancelled before its task is failed
# anyway (a handler that swallows CancelledError must not hold its slot forever).
_CANCEL_GRACE = 1.0

RetryDelay = Callable[[int, BaseException, Task], Duration]
"""``retry_delay(retried, error, task)``: how long to wait before the next attempt."""
IsFailure = Callable[[BaseException], bool]
"""``is_failure(error)``: False retries without counting an attempt (asynq's ``IsFailure``)."""
ErrorHandler = Callable[[Task, BaseException], None]
"""``error_handler(task, error)``: called for every error a handler raised."""


class DeadlineExceeded(TimeoutError):
    """The task ran past its timeout or deadline (asynq: ``context deadline exceeded``)."""

    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class TaskCancelled(Exception):
    """The task was cancelled by an Inspector or lost its lease (asynq: ``context canceled``)."""

    def __init__(self) -> None:
        super().__init__("context canceled")


@dataclass
class _Running:
    task: Task
    deadline: float
    asyncio_task: asyncio.Task[None] | None = None
    cancel_error: BaseException | None = None
    cancelled_at: float | None = None
    reported: bool = False


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not lose the outcome
        text = ""
    name = type(exc).__name__
    if isinstance(exc, (DeadlineExceeded, TaskCancelled)) or type(exc).__module__.startswith(
        "ferroq"
    ):
        return text or name
    return f"{name}: {text}" if text else name


class Server:
    """Processes tasks from asynq-layout queues with a pool of workers.

    Args:
        redis_url: Redis URL (see ``Client``); defaults to ``$REDIS_URL``.
        concurrency: Most tasks in flight at once (default: number of CPUs).
        queues: Queue name → priority (default ``{"default": 1}``).
        strict_priority: Always drain higher priorities first instead of weighted random order.
        retry_delay: Delay before a retry; default asynq's ``n⁴ + 15 + rand(30)·(n+1)`` s.
        is_failure: Whether an error counts as a failed attempt (default: always).
        error_handler: Called for every handler error (including ``SkipRetry`` and timeouts).
        shutdown_timeout: On shutdown, how long running handlers may finish before their tasks
            are requeued (default 8 s).
        task_check_interval: Poll period when every queue is empty (default 1 s, randomised).
        delayed_task_check_interval: How often scheduled and retry tasks are forwarded (5 s).
        janitor_interval: How often expired completed tasks are deleted (8 s).
        janitor_batch_size: Completed tasks deleted per call (100).
        namespace: Key prefix (``asynq``).
        heartbeat_interval: Heartbeat and lease renewal period (5 s, as asynq).
        recoverer_interval: How often expired leases of dead servers are recovered (60 s).
        syncer_interval: How often outcome writes that failed are retried (5 s).
        tls_ca_file: PEM file of the CA to trust for ``rediss://`` instead of the system's roots.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        concurrency: int | None = None,
        queues: Mapping[str, int] | None = None,
        strict_priority: bool = False,
        retry_delay: RetryDelay | None = None,
        is_failure: IsFailure | None = None,
        error_handler: ErrorHandler | None = None,
        shutdown_timeout: Duration = 8.0,
        task_check_interval: Duration = 1.0,
        delayed_task_check_interval: Duration = 5.0,
        janitor_interval: Duration = 8.0,
        janitor_batch_size: int = 100,
        namespace: str = "asynq",
        heartbeat_interval: Duration = 5.0,
        recoverer_interval: Duration = 60.0,
        syncer_interval: Duration = 5.0,
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        concurrency = concurrency if concurrency and concurrency > 0 else (os.cpu_count() or 1)
        self.concurrency = concurrency
        self._retry_delay = retry_delay
        self._is_failure = is_failure
        self._error_handler = error_handler
        self._shutdown_timeout = _options.seconds("shutdown_timeout", shutdown_timeout) or 0.0

        def secs(name: str, v: Duration) -> float:
            out = _options.seconds(name, v)
            assert out is not None
            return out

        self._native = NativeServer(
            _options.redis_url(redis_url),
            namespace=namespace,
            concurrency=concurrency,
            queues=dict(queues) if queues is not None else None,
            strict_priority=strict_priority,
            task_check_interval=secs("task_check_interval", task_check_interval),
            delayed_task_check_interval=secs(
                "delayed_task_check_interval", delayed_task_check_interval
            ),
            janitor_interval=secs("janitor_interval", janitor_interval),
            janitor_batch_size=janitor_batch_size,
            heartbeat_interval=secs("heartbeat_interval", heartbeat_interval),
            recoverer_interval=secs("recoverer_interval", recoverer_interval),
            syncer_interval=secs("syncer_interval", syncer_interval),
            tls_ca=_options.read_ca(tls_ca_file),
        )
        self._handler: ServeMux | Handler | None = None
        self._running: dict[int, _Running] = {}
        # Cancellations that arrived before their task was dispatched (token → when).
        self._early_cancels: dict[int, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._closed = threading.Event()
        # Twice the slots: a sync handler that overran its deadline keeps its thread until it
        # returns, and must not keep the next task from starting.
        self._pool = WorkerPool(2 * concurrency, "ferroq-worker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_tasks: set[asyncio.Task[None]] = set()
        self._threads: list[threading.Thread] = []

    @property
    def server_id(self) -> str:
        """This server's ID, as published in its heartbeat."""
        return self._native.server_id

    @property
    def status(self) -> str:
        """``new``, ``active``, ``stopped`` or ``closed``."""
        return self._native.status

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, handler: ServeMux | Handler) -> None:
        """Starts processing in background threads and returns.

        Args:
            handler: A ``ServeMux`` or any sync/async handler taking a ``Task``.

        Raises:
            ServerClosedError: The server was already started or shut down.
            BrokerConnectionError: Redis is unreachable.
        """
        if self._handler is not None or self._closed.is_set():
            raise ServerClosedError("server already started or shut down")
        if not callable(handler):
            raise TypeError("handler must be callable (a ServeMux or a function taking a Task)")
        self._native.start()
        self._handler = handler
        loop = asyncio.new_event_loop()
        self._loop = loop
        for name, target in (
            ("ferroq-asyncio", lambda: self._run_loop(loop)),
            ("ferroq-dispatcher", self._dispatch_loop),
            ("ferroq-watchdog", self._watchdog_loop),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stops fetching new tasks; running ones go on (asynq's ``Stop``, SIGTSTP)."""
        self._native.stop_fetching()

    def shutdown(self) -> None:
        """Stops fetching and shuts down, requeueing what does not finish in time.

        Waits up to ``shutdown_timeout`` for running handlers, requeues the tasks of those still
        running, writes every outcome and stops all threads. Safe to call more than once.
        """
        if self._closed.is_set():
            return
        self._stopping.set()
        self._native.stop_fetching()
        deadline = time.monotonic() + self._shutdown_timeout
        # After the dispatcher has stopped, nothing new starts: what runs now is all there is.
        for t in self._threads:
            if t.name == "ferroq-dispatcher":
                t.join(timeout=5)
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            abandoned = list(self._running.items())
            self._running.clear()
        for token, r in abandoned:
            log.warning("requeueing task %s: still running at shutdown", r.task.id)
            r.reported = True
            self._cancel(r, TaskCancelled())
            self._native.finish([(token, _REQUEUE, "", None, False)])
        self._closed.set()
        self._native.shutdown()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(timeout=5)
        self._pool.shutdown()

    def run(self, handler: ServeMux | Handler) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and shuts down (SIGTSTP stops fetching).

        Signal handlers are installed only when called from the main thread, and before the
        server starts, so a signal during start-up is not the default "terminate now".
        """
        wake = threading.Event()
        if threading.current_thread() is threading.main_thread():

            def on_term(signum: int, frame: FrameType | None) -> None:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                wake.set()

            def on_tstp(signum: int, frame: FrameType | None) -> None:
                log.info("received SIGTSTP, no longer fetching new tasks")
                self.stop()

            signal.signal(signal.SIGTERM, on_term)
            signal.signal(signal.SIGINT, on_term)
            if hasattr(signal, "SIGTSTP"):
                signal.signal(signal.SIGTSTP, on_tstp)
        self.start(handler)
        try:
            while not wake.wait(0.5) and not self._closed.is_set():
                pass
        finally:
            self.shutdown()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- dispatch ------------------------------------------------------------------------

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                # Bounded: a handler that swallows its cancellation must not hang shutdown.
                loop.run_until_complete(asyncio.wait(pending, timeout=_CANCEL_GRACE))
            loop.close()

    def _dispatch_loop(self) -> None:
        native, handler = self._native, self._handler
        assert handler is not None
        while not self._stopping.is_set():
            try:
                rows = native.next_batch(self.concurrency, 0.1)
            except BaseException:  # a panic in the core arrives as a BaseException
                log.exception("fetching leased tasks failed")
                time.sleep(0.1)
                continue
            if self._stopping.is_set():
                # Shutdown began while these were on their way: give them straight back.
                native.finish([(row[0], _REQUEUE, "", None, False) for row in rows])
                break
            batch: list[_Running] = []
            for row in rows:
                try:
                    task = Task._leased(native, row)
                except Exception as exc:  # fields the Rust decoder accepted but Python cannot use
                    log.exception("archiving task %s: unusable message", row[1])
                    text = f"ferroq: unusable task message: {_error_text(exc)}"
                    native.finish([(row[0], _ARCHIVE, text, None, True)])
                    continue
                batch.append(_Running(task, float(row[8])))
            # One lock round for the whole batch: register, and collect early cancellations.
            with self._lock:
                early: set[int] = set()
                for r in batch:
                    token = r.task._token
                    self._running[token] = r
                    if self._early_cancels.pop(token, None) is not None:
                        early.add(token)
            async_batch: list[tuple[Handler, _Running]] = []
            for r in batch:
                if r.task._token in early:
                    r.cancel_error = TaskCancelled()
                    self._report(r, r.cancel_error)
                    continue
                self._start(handler, r, async_batch)
            if async_batch:
                self._start_async(async_batch)

    def _start(
        self,
        handler: ServeMux | Handler,
        r: _Running,
        async_batch: list[tuple[Handler, _Running]],
    ) -> None:
        try:
            h = handler.resolve(r.task.type) if isinstance(handler, ServeMux) else handler
            if is_async(h):
                async_batch.append((h, r))
            else:
                self._pool.submit(self._run_sync, h, r)
        except BaseException as exc:  # a bad resolver or a closed pool must not lose the task
            self._report(r, exc)

    def _start_async(self, batch: list[tuple[Handler, _Running]]) -> None:
        """Hands a whole batch to the event loop with one wake-up of the loop."""
        loop = self._loop
        assert loop is not None

        def spawn() -> None:
            for h, r in batch:
                t = loop.create_task(self._run_async(h, r))
                # The loop keeps only weak references to tasks.
                self._async_tasks.add(t)
                t.add_done_callback(self._async_tasks.discard)

        try:
            loop.call_soon_threadsafe(spawn)
        except BaseException as exc:  # the loop is closed: shutdown raced the dispatch
            for _, r in batch:
                self._report(r, exc)

    def _run_sync(self, h: Handler, r: _Running) -> None:
        if r.reported:
            return  # failed at its deadline (or cancelled) while it waited for a thread
        try:
            out = h(r.task)
            if out is not None and hasattr(out, "__await__"):
                # A sync wrapper around an async handler: run it on the loop and wait here.
                assert self._loop is not None
                asyncio.run_coroutine_threadsafe(_await(out), self._loop).result()
        except BaseException as exc:
            self._report(r, exc)
        else:
            self._report(r, None)

    async def _run_async(self, h: Handler, r: _Running) -> None:
        r.asyncio_task = asyncio.current_task()
        if r.cancel_error is not None:  # cancelled before it started
            self._report(r, r.cancel_error)
            return
        try:
            out = h(r.task)
            if out is not None:
                await out
        except asyncio.CancelledError:
            self._report(r, r.cancel_error or TaskCancelled())
        except BaseException as exc:
            self._report(r, exc)
        else:
            self._report(r, None)

    # ---- outcomes ------------------------------------------------------------------------

    def _report(self, r: _Running, exc: BaseException | None) -> None:
        token = r.task._token
        with self._lock:
            # The first report wins: a deadline may have failed the task while its handler ran.
            if r.reported or token not in self._running:
                return
            r.reported = True
        try:
            try:
                outcome = self._outcome(r.task, exc)
            except BaseException:
                log.exception("deciding the outcome of task %s failed; retrying it", r.task.id)
                outcome = (token, _RETRY, "ferroq: the outcome could not be decided", None, True)
            self._native.finish([outcome])
        except BaseException:
            log.exception("reporting the outcome of task %s failed", r.task.id)
        finally:
            # Only now: shutdown waits for _running to empty before it requeues what is left.
            with self._lock:
                self._running.pop(token, None)
                self._idle.notify_all()

    def _outcome(
        self, task: Task, exc: BaseException | None
    ) -> tuple[int, int, str, float | None, bool]:
        token = task._token
        if exc is None:
            return (token, _DONE, "", None, False)
        if self._error_handler is not None:
            try:
                self._error_handler(task, exc)
            except BaseException:
                log.exception("error_handler raised")
        text = _error_text(exc)
        if isinstance(exc, RevokeTask):
            return (token, _REVOKE, text, None, False)
        if isinstance(exc, SkipRetry) or task.retry_count >= task.max_retry:
            return (token, _ARCHIVE, text, None, True)
        try:
            failure = bool(self._is_failure(exc)) if self._is_failure else True
            delay = (
                _options.seconds("retry_delay", self._retry_delay(task.retry_count, exc, task))
                if self._retry_delay
                else None
            )
            if delay is not None and not math.isfinite(delay):
                raise ValueError(f"retry_delay returned {delay}")
        except Exception:
            log.exception("retry_delay or is_failure raised; using the defaults")
            failure, delay = True, None
        return (token, _RETRY, text, delay, failure)

    # ---- deadlines and cancellation ------------------------------------------------------

    def _cancel(self, r: _Running, why: BaseException) -> None:
        """Tells a handler to stop, once: a second cancel would break its cleanup code."""
        if r.cancelled_at is not None:
            return
        r.cancelled_at = time.monotonic()
        if r.cancel_error is None:
            r.cancel_error = why
        r.task._mark_cancelled()
        t, loop = r.asyncio_task, self._loop
        if t is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(t.cancel)

    def _watchdog_loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._watch_once()
            except BaseException:  # the watchdog must outlive anything a handler does
                log.exception("watchdog pass failed")
                time.sleep(0.05)

    def _watch_once(self) -> None:
        cancelled = self._native.cancellations(0.05)
        now, mono = time.time(), time.monotonic()
        with self._lock:
            by_token = [self._running.get(t) for t, _why in cancelled]
            for t, _why in cancelled:
                if t not in self._running:
                    self._early_cancels[t] = mono
            for t, at in list(self._early_cancels.items()):
                if mono - at > 60:  # its task ended or was requeued without being dispatched
                    del self._early_cancels[t]
            expired = [r for r in self._running.values() if r.deadline <= now]
            stuck = [
                r
                for r in self._running.values()
                if r.cancelled_at is not None and mono - r.cancelled_at > _CANCEL_GRACE
            ]
        for r in by_token:
            if r is not None:
                self._cancel(r, TaskCancelled())
                if r.asyncio_task is None:
                    self._report(r, r.cancel_error)
        for r in expired:
            self._cancel(r, DeadlineExceeded())
            if r.asyncio_task is None:
                # A sync handler cannot be interrupted: it was told through task.cancelled,
                # and its task fails now; whatever it returns later is ignored.
                self._report(r, r.cancel_error)
        for r in stuck:
            # An async handler that ignores its cancellation: fail the task without it.
            self._report(r, r.cancel_error)


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw
