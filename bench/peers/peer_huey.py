"""Huey peer: producer and consumer, run inside Huey's venv by ``run.py``.

Config knobs: ``--workers`` and ``--worker-type`` (thread/process/greenlet; only ``thread`` keeps
to one process). ``results=False``: no result is stored, as with every peer here. Timing: in
this process (see ``_common``); with ``--worker-type process`` the shared counter still works
because it is created before Huey forks.

Scenarios (``_common``): *mixed* delays with ``task.schedule(delay=1)`` and declares the task
with ``retries=3, retry_delay=1`` (only in that scenario; Huey copies both into each message at
enqueue, so the producer declares them too). A consumer worker that pops a task before its time
puts it on the schedule, and the consumer's scheduler (a thread or process of the consumer)
re-enqueues due tasks every ``scheduler_interval`` = 1 s, Huey's minimum. *weighted* is
unsupported: a Huey instance has one queue and a consumer serves one Huey instance.
"""

from __future__ import annotations

import time
from typing import Any

import _common

DIST = "huey"
NO_WEIGHTS = (
    "a Huey instance has one queue (huey/storage.py: RedisStorage.queue_key) and a consumer"
    " serves one instance (huey/consumer.py: Consumer.__init__)"
)


def _huey(url: str, scenario: str) -> tuple[Any, Any]:
    from huey import RedisHuey  # type: ignore[import-not-found, unused-ignore]

    # blocking=True (the default) pops with BRPOP instead of polling with a back-off.
    huey = RedisHuey("bench", url=url, results=False, blocking=True)
    options: dict[str, Any] = {}
    if scenario == "mixed":
        options = {"retries": 3, "retry_delay": _common.DELAY}
    noop = huey.task(name="noop", **options)(_common.task)
    return huey, noop


def produce(url: str, n: int, scenario: str) -> None:
    _, noop = _huey(url, scenario)
    tasks = _common.plan(scenario, n)
    t0 = time.perf_counter()
    for k, _, delay in tasks:
        if delay:
            noop.schedule((k,), delay=delay)
        else:
            noop(k)
    config = "task() call, results=False"
    if scenario == "mixed":
        config += ", retries=3, retry_delay=1; schedule(delay=1) for the delayed half"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


def work(url: str, n: int, scenario: str, workers: int, worker_type: str) -> None:
    huey, _ = _huey(url, scenario)
    counter = _common.install_counter(n, scenario)
    procs = f"{workers} processes" if worker_type == "process" else "1 process"
    config = f"{procs}, workers={workers}, worker_type={worker_type}"
    if scenario == "mixed":
        config += "; scheduler_interval=1s; retries: retries=3, retry_delay=1 per task"
    consumer = huey.create_consumer(
        workers=workers, worker_type=worker_type, periodic=False, check_worker_health=False
    )
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST, kill_children=True)
    consumer.run()


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--worker-type", choices=["thread", "process", "greenlet"], default="thread")
    a = p.parse_args()
    if a.scenario == "weighted":
        _common.unsupported(a.scenario, NO_WEIGHTS)
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks, a.scenario)
    else:
        work(a.url, a.tasks, a.scenario, a.workers, a.worker_type)


if __name__ == "__main__":
    main()
