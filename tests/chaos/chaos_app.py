"""The app the chaos suite's worker and scheduler processes run.

``ferroq worker chaos_app:mux`` and ``ferroq scheduler chaos_app:scheduler``, with this
directory on ``PYTHONPATH`` and ``FERROQ_CHAOS_DIR`` naming a directory for the records.

Every handler that finishes appends one line to ``$FERROQ_CHAOS_DIR/exec-<pid>.log`` (one file
per process), with a single ``os.write`` on an ``O_APPEND`` descriptor, so a line is whole even
when the process is SIGKILLed right after and lines of concurrent threads never interleave::

    <task id> <pid> <attempt> <unix time> [<tag>]

``attempt`` is the task's retry count, the time is when the handler finished, and ``tag`` is
the ``ferroq-periodic-at`` header of periodic tasks (the firing). The record lives outside
Redis on purpose: it is the witness of what ran, whatever Redis lost. ``checker.py`` reads it.
The work and hold handlers also append the same line to ``begin-<pid>.log`` when they start, so
a test can tell which tasks a process was running when it was killed.

Handlers (all plain functions, so they run on the worker's thread pool):

* ``chaos:work``: sleeps ``payload`` milliseconds (the load of the churn and outage tests).
* ``chaos:hold``: the first execution of a task (the one that creates
  ``hold-<id>`` in the records directory, holding its pid) waits ``payload`` seconds or until
  the task is cancelled; later executions finish at once. A cancelled hold raises, so its run
  fails as a handler that honours cancellation would.
* ``chaos:tick``: the periodic task of ``scheduler``; finishes at once.
"""

from __future__ import annotations

import os
import threading
import time

from ferroq import Scheduler, ServeMux, Task, TaskCancelled
from ferroq.scheduler import FIRED_AT_HEADER

__all__ = ["TICK_QUEUE", "ReadyScheduler", "mux", "scheduler"]

#: The queue the scheduler's entry fires into.
TICK_QUEUE = "ticks"

mux = ServeMux()

_fd_lock = threading.Lock()
_fds: dict[str, int] = {}


def _records_dir() -> str:
    return os.environ["FERROQ_CHAOS_DIR"]


def _fd(kind: str) -> int:
    with _fd_lock:
        fd = _fds.get(kind)
        if fd is None:
            path = os.path.join(_records_dir(), f"{kind}-{os.getpid()}.log")
            fd = _fds[kind] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return fd


def record(task: Task, tag: str = "", *, kind: str = "exec") -> None:
    """Appends this execution of ``task`` to this process's record file.

    Args:
        task: The task that just ran to its end (or, with ``kind="begin"``, that starts).
        tag: An extra word (no spaces) kept with the line, e.g. a periodic firing.
        kind: ``exec`` (the end of a run: the evidence the checker reads) or ``begin``.
    """
    line = f"{task.id} {os.getpid()} {task.retry_count} {time.time():.6f}"
    if tag:
        line += f" {tag}"
    # One write of one line on an O_APPEND fd: atomic with respect to the other threads.
    os.write(_fd(kind), (line + "\n").encode())


@mux.handle("chaos:work")
def work(task: Task) -> None:
    """Sleeps ``payload`` milliseconds (default 0), then records."""
    record(task, kind="begin")
    time.sleep(int(task.payload or b"0") / 1000)
    record(task)


@mux.handle("chaos:hold")
def hold(task: Task) -> None:
    """Holds a slot on its first execution (see the module docstring), then records."""
    record(task, kind="begin")
    marker = os.path.join(_records_dir(), f"hold-{task.id}")
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        first = False
    else:
        # The pid tells the test which worker to kill; the time when the hold began.
        os.write(fd, f"{os.getpid()} {time.time():.6f}\n".encode())
        os.close(fd)
        first = True
    if first and task.wait_cancelled(float(task.payload or b"0")):
        raise TaskCancelled()
    record(task)


@mux.handle("chaos:tick")
def tick(task: Task) -> None:
    """Records the firing the periodic task stands for."""
    record(task, tag=task.headers.get(FIRED_AT_HEADER, "-"))


class ReadyScheduler(Scheduler):
    """A ``Scheduler`` that leaves ``sched-ready-<pid>`` in the records directory once started.

    The test counts a replica as up from that moment, not from its spawn (imports and the first
    PING take a while on a loaded machine).
    """

    def start(self) -> None:
        """Starts firing, then writes the ready marker."""
        super().start()
        path = os.path.join(_records_dir(), f"sched-ready-{os.getpid()}")
        with open(path, "w") as f:
            f.write(f"{time.time():.6f}\n")


#: One entry firing every second (seconds are the sixth field) into ``TICK_QUEUE``; every
#: replica registers the same entry, so they all compete for the same firings.
scheduler = ReadyScheduler(heartbeat_interval=1)
scheduler.register("* * * * * *", Task("chaos:tick"), queue=TICK_QUEUE)
