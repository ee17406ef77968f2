"""Shared helpers for the peer modules: argument parsing, a fork-safe task counter, results.

Every peer module runs inside that peer's own virtualenv (stdlib only here), in one of two roles:

- ``produce``: enqueue ``--tasks`` no-op tasks, one library call per task, and report the rate.
  The tasks stay in Redis as the backlog for the ``work`` role that follows.
- ``work``: start one worker on that backlog and report the rate from worker start to the last
  task's completion.

and one of three scenarios (``--scenario``), the ones asynq's own ``benchmark_test.go`` runs:

- ``simple`` (``BenchmarkEndToEndSimple``): every task on the peer's default queue, ready now.
- ``mixed`` (``BenchmarkEndToEnd``): the first half ready now, the second half scheduled
  :data:`DELAY` seconds after its enqueue; 1 % of the tasks (index divisible by 100) fail their
  first attempt and must be retried after :data:`DELAY` seconds. Done when every task succeeded.
- ``weighted`` (``BenchmarkEndToEndMultipleQueues``): a third each on the queues ``high``,
  ``default`` and ``low``, which the worker serves with the weights :data:`WEIGHTS` (or the
  nearest the peer offers; its config says which).

and one more, not asynq's: ``cpu``, as ``simple`` but each task first runs :func:`burn`, about
0.5 ms of pure-Python work (the CPU-bound handler of the multi-process comparison, where one
process is bound by its GIL).

Each task carries its index ``k`` (``0 <= k < tasks``) as its only argument; the task body is
:func:`task`. :func:`plan` says, per index, which queue and which delay the producer must use.

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


SCENARIOS = ("simple", "mixed", "weighted", "cpu")
# What bench/peers/run.py runs unless told otherwise: asynq's three.
DEFAULT_SCENARIOS = ("simple", "mixed", "weighted")
# Loop iterations of burn(): ~0.5 ms in CPython 3.11 on the 2-vCPU VM of bench/RESULTS.md. A
# fixed count, not a calibrated time, so every peer's interpreter does the same work.
BURN_ITERATIONS = 6_000
DELAY = 1.0  # seconds: the schedule delay and the retry delay of the mixed scenario (as asynq's)
WEIGHTS = {"high": 6, "default": 3, "low": 1}  # asynq's BenchmarkEndToEndMultipleQueues


def parser(description: str | None) -> argparse.ArgumentParser:
    """Arguments common to every peer module; a module adds its own tuning knobs."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("role", choices=["produce", "work"])
    p.add_argument("--url", required=True, help="redis://127.0.0.1:PORT/0")
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--scenario", choices=SCENARIOS, default="simple")
    return p


def plan(scenario: str, n: int) -> list[tuple[int, str | None, float]]:
    """What the producer enqueues: ``(k, queue, delay_seconds)`` for ``k`` in ``range(n)``.

    ``queue`` is ``None`` for the peer's default queue (only the weighted scenario names queues).
    """
    if scenario == "mixed":
        return [(k, None, DELAY if k >= n // 2 else 0.0) for k in range(n)]
    if scenario == "weighted":
        names = list(WEIGHTS)
        third = -(-n // 3)
        return [(k, names[k // third], 0.0) for k in range(n)]
    return [(k, None, 0.0) for k in range(n)]


def unsupported(scenario: str, reason: str) -> None:
    """Report that this peer cannot run ``scenario`` (a table cell, not a failure) and exit."""
    emit(role="unsupported", scenario=scenario, reason=reason)
    sys.stdout.flush()
    os._exit(0)


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

    def __init__(self, target: int, scenario: str = "simple") -> None:
        self.target = target
        self.scenario = scenario
        self._count = multiprocessing.Value("q", 0)
        self._first = multiprocessing.Value("d", 0.0, lock=False)
        self._last = multiprocessing.Value("d", 0.0, lock=False)
        # One flag per task: has its planned failure happened yet (mixed scenario only). Shared
        # memory, so a retry that lands in another forked process still succeeds.
        self._failed = multiprocessing.Array("b", target if scenario == "mixed" else 0, lock=True)
        self.failures = multiprocessing.Value("q", 0)

    def should_fail(self, k: int) -> bool:
        """Whether this attempt of task ``k`` is the planned failed first attempt."""
        if self.scenario != "mixed" or k % 100 != 0 or not 0 <= k < self.target:
            return False
        with self._failed.get_lock():
            if self._failed[k]:
                return False
            self._failed[k] = 1
        with self.failures.get_lock():
            self.failures.value += 1
        return True

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


class PlannedFailure(Exception):
    """Raised by the first attempt of 1 % of the tasks in the mixed scenario."""


def burn() -> int:
    """About 0.5 ms of pure-Python work (the ``cpu`` scenario's task body), holding the GIL."""
    x = 0
    for i in range(BURN_ITERATIONS):
        x += i * i
    return x


def task(k: int) -> None:
    """Task body for every peer: fail if planned, burn CPU in the cpu scenario, count the task."""
    assert COUNTER is not None, "worker role did not install the counter"
    if COUNTER.scenario == "cpu":
        burn()
    if COUNTER.should_fail(k):
        raise PlannedFailure(f"task {k}: planned failure of the first attempt")
    COUNTER.hit()


def install_counter(target: int, scenario: str = "simple") -> Counter:
    """Create the shared counter; call before the worker forks or starts threads."""
    global COUNTER
    COUNTER = Counter(target, scenario)
    return COUNTER


def emit(**fields: Any) -> None:
    """Print the one result line the orchestrator parses."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(fields) + "\n")
    sys.stdout.flush()


def emit_enqueue(n: int, seconds: float, config: str, dist: str) -> None:
    """Report the producer's rate (one library call per task)."""
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
        scenario=counter.scenario,
        failures=int(counter.failures.value),
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


def finish_work_in_thread(
    counter: Counter, t0: float, config: str, dist: str, *, kill_children: bool = False
) -> None:
    """For peers whose worker blocks the main thread: report from a daemon thread.

    With ``kill_children``, the ``multiprocessing`` children alive when the last task finished
    (a forked scheduler, process workers) are killed with this process.
    """

    def watch() -> None:
        children: tuple[int, ...] = ()
        if kill_children:
            counter.wait()
            children = tuple(p.pid for p in multiprocessing.active_children() if p.pid)
        finish_work(counter, t0, config, dist, children)

    threading.Thread(target=watch, daemon=True, name="bench-watch").start()
