"""arq peer: producer and worker, run inside arq's venv by ``run.py``.

Knobs: ``--max-jobs`` (concurrent jobs) and ``--poll-delay`` (arq polls its sorted set; the
default 0.5 s idles between batches of ``queue_read_limit`` = max(5 x max_jobs, 100) jobs).
``keep_result=0``: no result is stored, as with every peer here. Timing: in this process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common

DIST = "arq"


async def noop(ctx: dict[str, Any]) -> None:
    """The job (arq jobs are coroutines that get a context dict)."""
    _common.hit()


def _settings(url: str) -> Any:
    from arq.connections import RedisSettings  # type: ignore[import-not-found, unused-ignore]

    return RedisSettings.from_dsn(url)


async def produce(url: str, n: int) -> None:
    from arq import create_pool  # type: ignore[import-not-found, unused-ignore]

    pool = await create_pool(_settings(url))
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for _ in range(n):
        await pool.enqueue_job("noop")
    _common.emit_enqueue(n, time.perf_counter() - t0, "await enqueue_job() each", DIST)


async def work(url: str, n: int, max_jobs: int, poll_delay: float) -> None:
    from arq.worker import Worker, func  # type: ignore[import-not-found, unused-ignore]

    counter = _common.install_counter(n)
    config = f"1 process, max_jobs={max_jobs}, poll_delay={poll_delay}s"
    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=_settings(url),
        handle_signals=False,
        max_jobs=max_jobs,
        poll_delay=poll_delay,
        keep_result=0,
        log_results=False,
    )
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    await worker.async_run()


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--max-jobs", type=int, default=10)
    p.add_argument("--poll-delay", type=float, default=0.5)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks))
    else:
        asyncio.run(work(a.url, a.tasks, a.max_jobs, a.poll_delay))


if __name__ == "__main__":
    main()
