"""Shared helpers for the peer modules: argument parsing, a fork-safe task counter, results.

Every peer module runs inside that peer's own virtualenv (stdlib only here), in one of two roles:

- ``produce``: enqueue ``--tasks`` no-op tasks, one library call per task, and report the rate.
  The tasks stay in Redis as the backlog for the ``work`` role that follows.
- ``work``: start one worker on that backlog and report the rate from worker start to the last
  task's completion.

Timing is done inside these processes: the orchestrator only sees the JSON line that
:func:`emit` prints, so interpreter start-up and imports are never counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from importlib import metadata
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "


def parser(description: str | None) -> argparse.ArgumentParser:
    """Arguments common to every peer module; a module adds its own tuning knobs."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("role", choices=["produce", "work"])
    p.add_argument("--url", required=True, help="redis://127.0.0.1:PORT/0")
    p.add_argument("--tasks", type=int, required=True)
    return p


def version(dist: str) -> str:
    """Installed version of a distribution in this venv."""
    return metadata.version(dist)


def quiet() -> None:
    """Keep library logging off the hot path: a log line per task would be measured too."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)


class Counter:
    """Counts finished tasks across threads *and* forked child processes.

    The values live in shared memory created before any worker forks, so prefork pools and
    hand-forked processes update the same numbers. ``perf_counter`` is CLOCK_MONOTONIC on Linux,
    which is the same clock in every process, so the child's timestamps compare with the
    parent's start time.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self._count = multiprocessing.Value("q", 0)
        self._first = multiprocessing.Value("d", 0.0, lock=False)
        self._last = multiprocessing.Value("d", 0.0, lock=False)

    def hit(self) -> None:
        """Record one finished task (called from the peer's no-op task body)."""
        with self._count.get_lock():
            self._count.value += 1
            n = self._count.value
        if n == 1:
            self._first.value = time.perf_counter()
        if n == self.target:
            self._last.value = time.perf_counter()

    @property
    def count(self) -> int:
        return int(self._count.value)

    def wait(self) -> tuple[float, float]:
        """Block until ``target`` tasks ran; return (first, last) completion times.

        Polls every 5 ms rather than being signalled: the last task records its own
        timestamp, so the poll interval does not affect the measurement.
        """
        while self.count < self.target:
            time.sleep(0.005)
        while self._last.value == 0.0:  # the finishing task may still be writing it
            time.sleep(0.001)
        return float(self._first.value), float(self._last.value)


COUNTER: Counter | None = None


def hit() -> None:
    """Task body for every peer: count the task, nothing else."""
    assert COUNTER is not None, "worker role did not install the counter"
    COUNTER.hit()


def install_counter(target: int) -> Counter:
    """Create the shared counter; call before the worker forks or starts threads."""
    global COUNTER
    COUNTER = Counter(target)
    return COUNTER


def emit(**fields: Any) -> None:
    """Print the one result line the orchestrator parses."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(fields) + "\n")
    sys.stdout.flush()


def emit_enqueue(n: int, seconds: float, config: str, dist: str) -> None:
    emit(role="produce", tasks=n, rate=n / seconds, config=config, version=version(dist))


def finish_work(
    counter: Counter, t0: float, config: str, dist: str, children: tuple[int, ...] = ()
) -> None:
    """Wait for the backlog to drain, report, and leave at once.

    Exits with ``os._exit``: a graceful shutdown is not part of the measurement, some peers take
    seconds to stop their pools, and the orchestrator kills the process group and flushes Redis.
    """
    first, last = counter.wait()
    emit(
        role="work",
        tasks=counter.target,
        rate=counter.target / (last - t0),
        first_ms=(first - t0) * 1000,
        config=config,
        version=version(dist),
    )
    sys.stderr.flush()
    for pid in children:  # forked workers would otherwise outlive a manual run
        os.kill(pid, signal.SIGKILL)
    os._exit(0)


def finish_work_in_thread(counter: Counter, t0: float, config: str, dist: str) -> None:
    """For peers whose worker blocks the main thread: report from a daemon thread."""
    threading.Thread(
        target=finish_work, args=(counter, t0, config, dist), daemon=True, name="bench-watch"
    ).start()
