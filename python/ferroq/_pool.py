"""The worker threads that run sync handlers.

``concurrent.futures.ThreadPoolExecutor`` creates a ``Future`` (with its ``Condition``) per call,
takes a semaphore per call to find an idle thread, and joins its threads at interpreter exit.
The server needs none of that: a handler's outcome is reported by the handler's wrapper itself.
This pool is a ``SimpleQueue`` (in C) and threads started on demand up to a limit, found idle
by one counter under a lock until the limit is reached (threads never exit, so after that there
is nothing left to decide). Its threads are daemons: a handler that
never returns cannot keep the process alive after ``Server.shutdown`` requeued its task.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ferroq")

_STOP = None  # the sentinel a worker exits on


class WorkerPool:
    """Runs callables on up to ``max_workers`` daemon threads, started as they are needed."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max(1, max_workers)
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work and not yet claimed by a submit
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._full = False  # every thread started: submissions just queue

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queues ``fn(*args)``; starts a thread when none is idle and the limit allows.

        Raises:
            RuntimeError: The pool was shut down.
        """
        if self._full:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            self._queue.put((fn, args))
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            if self._idle > 0:
                self._idle -= 1  # claimed: that thread takes this call
                spawn = False
            else:
                spawn = len(self._threads) < self._max
            if spawn:
                t = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                self._full = len(self._threads) >= self._max
        self._queue.put((fn, args))
        if spawn:
            try:
                t.start()
            except BaseException:
                # No thread after all (the OS refused one): free its slot. The call stays
                # queued for the next free thread; the caller learns of the failure.
                with self._lock:
                    self._threads.remove(t)
                    self._full = False
                raise

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # the callables report their own errors; this is a last resort
                log.exception("a worker thread's call raised")
            if not self._full:
                with self._lock:
                    self._idle += 1

    def shutdown(self) -> None:
        """Drops queued calls that have not started and lets every thread exit when free."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            self._queue.put(_STOP)
