"""SAQ peer: producer and worker, run inside SAQ's venv by ``run.py``.

Knob: ``--concurrency`` (jobs in flight on the worker's event loop). Timing: in this process.

Scenarios (``_common``): *mixed* delays with ``enqueue(scheduled=<epoch seconds>)`` (a float:
the field is annotated ``int``, but SAQ's own retries store float scores too, and an int would
round the delay down by up to 1 s) and gives every job ``retries=4, retry_delay=1`` (SAQ counts
attempts, so 3 retries; set per job at enqueue). The worker's ``schedule`` timer moves due jobs
to the queue every 1 s, SAQ's default. *weighted* is unsupported: a ``Worker`` serves one
``Queue``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common

DIST = "saq"
NO_WEIGHTS = "a SAQ Worker serves exactly one Queue (saq/worker.py: Worker.__init__)"


async def noop(ctx: dict[str, Any], *, k: int) -> None:
    """The job (SAQ jobs are coroutines that get a context dict, and keyword arguments)."""
    _common.task(k)


def _queue(url: str) -> Any:
    from saq import Queue  # type: ignore[import-not-found, unused-ignore]

    return Queue.from_url(url, name="bench")


async def produce(url: str, n: int, scenario: str) -> None:
    q = _queue(url)
    await q.connect()
    tasks = _common.plan(scenario, n)
    options: dict[str, Any] = {}
    config = "await enqueue() each"
    if scenario == "mixed":
        options = {"retries": 4, "retry_delay": _common.DELAY}
        config += ", retries=4, retry_delay=1; scheduled=now+1 s for the delayed half"
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for k, _, delay in tasks:
        if delay:
            await q.enqueue("noop", k=k, scheduled=time.time() + delay, **options)
        else:
            await q.enqueue("noop", k=k, **options)
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


async def work(url: str, n: int, scenario: str, concurrency: int) -> None:
    from saq import Worker  # type: ignore[import-not-found, unused-ignore]

    q = _queue(url)
    await q.connect()
    counter = _common.install_counter(n, scenario)
    config = f"1 process, concurrency={concurrency}"
    if scenario == "mixed":
        config += "; schedule timer 1 s; retries: retries=4, retry_delay=1 per job"
    worker = Worker(q, functions=[("noop", noop)], concurrency=concurrency)
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    await worker.start()


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--concurrency", type=int, default=10)
    a = p.parse_args()
    if a.scenario == "weighted":
        _common.unsupported(a.scenario, NO_WEIGHTS)
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks, a.scenario))
    else:
        asyncio.run(work(a.url, a.tasks, a.scenario, a.concurrency))


if __name__ == "__main__":
    main()
