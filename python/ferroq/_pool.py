"""The worker threads that run sync handlers.

``concurrent.futures.ThreadPoolExecutor`` creates a ``Future`` (with its ``Condition``) per call,
takes a semaphore per call to find an idle thread, and joins its threads at interpreter exit.
The server needs none of that: a handler's outcome is reported by the handler's wrapper itself.

This pool wakes as few threads as it can. The server hands it a batch of tasks at once, and
waking one sleeping thread per call (as a queue shared by every thread does) costs a context
switch and a hand-over of the GIL per task, where one awake thread could run several short
handlers in a row. So a call wakes a thread only when no thread is *searching* (woken, and not
yet at the queue), and a searching thread that takes a call
while others wait wakes one more before it runs it, so that calls which block still start one
after the other on threads of their own (Go's scheduler wakes its threads by the same rule).
Threads start on demand up to the limit and never exit before shutdown; the idle ones sleep on
their own lock, and the last to sleep is the first woken (its stack is still in the cache). They
are daemons: a handler that never returns cannot keep the process alive after
``Server.shutdown`` requeued its task.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ferroq")

_Call = tuple[Callable[..., Any], tuple[Any, ...]]


class WorkerPool:
    """Runs callables on up to ``max_workers`` daemon threads, started as they are needed."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max(1, max_workers)
        self._name = name
        self._lock = threading.Lock()  # guards every field below
        self._calls: deque[_Call] = deque()
        self._sleepers: list[threading.Lock] = []  # each held: its thread waits to acquire it
        self._searching = 0  # threads that will look at _calls before they sleep again
        self._threads = 0  # started or starting
        self._made = 0  # threads made, started or not: each gets its own name
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queues ``fn(*args)``; wakes or starts a thread when none will look for it.

        Raises:
            RuntimeError: The pool was shut down, or a thread it needed could not start (the
                call stays queued for the next thread that looks).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            self._calls.append((fn, args))
            if self._searching:
                return  # an awake thread takes it, or wakes another for it
            wake = self._wake_one()
        self._deliver(wake)

    def _wake_one(self) -> threading.Lock | threading.Thread | None:
        """Picks the thread to wake: a sleeper, else a new one within the limit.

        It counts as searching from now on; the caller wakes it with :meth:`_deliver`, outside
        the lock.
        """
        if self._sleepers:
            self._searching += 1
            return self._sleepers.pop()
        if self._threads < self._max:
            self._searching += 1
            sleeper = threading.Lock()
            sleeper.acquire()
            t = threading.Thread(
                target=self._work,
                args=(sleeper,),
                name=f"{self._name}-{self._made}",
                daemon=True,
            )
            self._made += 1
            self._threads += 1
            return t
        return None  # every thread runs a call: the first back takes this one

    def _deliver(self, wake: threading.Lock | threading.Thread | None) -> None:
        if isinstance(wake, threading.Thread):
            try:
                wake.start()
            except BaseException:
                # No thread after all (the OS refused one): free its slot. A call queued since,
                # which counted on it, must not wait for a busy thread while another sleeps.
                with self._lock:
                    self._threads -= 1
                    self._searching -= 1
                    spare = None
                    if self._calls and not self._searching and self._sleepers:
                        self._searching += 1
                        spare = self._sleepers.pop()
                if spare is not None:
                    spare.release()
                raise
        elif wake is not None:
            wake.release()

    def _work(self, sleeper: threading.Lock) -> None:
        lock, calls = self._lock, self._calls
        counted = True  # as searching, by _wake_one
        while True:
            wake: threading.Lock | threading.Thread | None = None
            with lock:
                if counted:
                    self._searching -= 1
                if self._closed:
                    return
                if not calls:
                    self._sleepers.append(sleeper)
                    call = None
                else:
                    call = calls.popleft()
                    if calls and not self._searching:
                        wake = self._wake_one()
            if call is None:
                sleeper.acquire()  # released by whoever wakes this thread, counted again
                counted = True
                continue
            # Not counted while it runs the call: a handler that blocks would leave the calls
            # queued behind it waiting.
            counted = False
            try:
                self._deliver(wake)
            except BaseException:  # the next submit tries again
                log.exception("a worker thread could not start")
            fn, args = call
            try:
                fn(*args)
            except BaseException:  # the callables report their own errors; this is a last resort
                log.exception("a worker thread's call raised")

    def shutdown(self) -> None:
        """Drops queued calls that have not started and lets every thread exit when free."""
        with self._lock:
            self._closed = True
            self._calls.clear()
            sleepers, self._sleepers = self._sleepers, []
            self._searching += len(sleepers)
        for s in sleepers:
            s.release()
