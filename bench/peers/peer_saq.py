"""SAQ peer: producer and worker, run inside SAQ's venv by ``run.py``.

Knob: ``--concurrency`` (jobs in flight on the worker's event loop). Timing: in this process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common

DIST = "saq"


async def noop(ctx: dict[str, Any]) -> None:
    """The job (SAQ jobs are coroutines that get a context dict)."""
    _common.hit()


def _queue(url: str) -> Any:
    from saq import Queue  # type: ignore[import-not-found, unused-ignore]

    return Queue.from_url(url, name="bench")


async def produce(url: str, n: int) -> None:
    q = _queue(url)
    await q.connect()
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for _ in range(n):
        await q.enqueue("noop")
    _common.emit_enqueue(n, time.perf_counter() - t0, "await enqueue() each", DIST)


async def work(url: str, n: int, concurrency: int) -> None:
    from saq import Worker  # type: ignore[import-not-found, unused-ignore]

    q = _queue(url)
    await q.connect()
    counter = _common.install_counter(n)
    config = f"1 process, concurrency={concurrency}"
    worker = Worker(q, functions=[("noop", noop)], concurrency=concurrency)
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    await worker.start()


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--concurrency", type=int, default=10)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks))
    else:
        asyncio.run(work(a.url, a.tasks, a.concurrency))


if __name__ == "__main__":
    main()
