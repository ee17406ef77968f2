"""Handlers that the tests run in separate worker processes (``ferroq worker tests.apps:mux``)."""

from __future__ import annotations

import asyncio
import os

from ferroq import Scheduler, ServeMux, Task

mux = ServeMux()

#: A scheduler replica for the high-availability test: fires every second into queue "ticks".
scheduler = Scheduler(heartbeat_interval=1)
scheduler.register("* * * * * *", Task("tick"), queue="ticks")


@mux.handle("ok:sync")
def ok_sync(task: Task) -> None:
    """Succeeds at once on the thread pool."""


@mux.handle("ok:async")
async def ok_async(task: Task) -> None:
    """Succeeds after yielding once on the event loop."""
    await asyncio.sleep(0)


@mux.handle("crash")
def crash(task: Task) -> None:
    """Takes the whole worker process down mid-task."""
    os._exit(3)


@mux.handle("nap")
def nap(task: Task) -> None:
    """Reports "started" as its progress, then sleeps 1.5 s: a task a graceful shutdown lets
    finish."""
    import time

    task.report_progress("started")
    time.sleep(1.5)


@mux.handle("block")
def block(task: Task) -> None:
    """Runs until cancelled (or the deadline passes), once it has reported "started" as its
    progress (a leased task's handler may not have started yet)."""
    task.report_progress("started")
    task.wait_cancelled(60)
