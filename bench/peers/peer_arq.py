"""arq peer: producer and worker, run inside arq's venv by ``run.py``.

Knobs: ``--max-jobs`` (concurrent jobs) and ``--poll-delay`` (arq polls its sorted set; the
default 0.5 s idles between batches of ``queue_read_limit`` = max(5 x max_jobs, 100) jobs).
``keep_result=0``: no result is stored, as with every peer here. Timing: in this process.

Scenarios (``_common``): *mixed* delays with ``enqueue_job(_defer_by=1)`` (a later score in the
same sorted set, picked up by the same poll) and retries by raising ``arq.worker.Retry(defer=1)``:
arq retries only on that exception (any other one fails the job); ``max_tries=4`` (3 retries)
in that scenario. *weighted* is unsupported: a ``Worker`` polls exactly one ``queue_name``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common

DIST = "arq"
NO_WEIGHTS = "an arq Worker polls exactly one queue_name (arq/worker.py: Worker.__init__)"


async def noop(ctx: dict[str, Any], k: int) -> None:
    """The job (arq jobs are coroutines that get a context dict)."""
    try:
        _common.task(k)
    except _common.PlannedFailure as e:
        from arq.worker import Retry  # type: ignore[import-not-found, unused-ignore]

        raise Retry(defer=_common.DELAY) from e


def _settings(url: str) -> Any:
    from arq.connections import RedisSettings  # type: ignore[import-not-found, unused-ignore]

    return RedisSettings.from_dsn(url)


async def produce(url: str, n: int, scenario: str) -> None:
    from arq import create_pool  # type: ignore[import-not-found, unused-ignore]

    pool = await create_pool(_settings(url))
    tasks = _common.plan(scenario, n)
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for k, _, delay in tasks:
        await pool.enqueue_job("noop", k, _defer_by=delay or None)
    config = "await enqueue_job() each"
    if scenario == "mixed":
        config += "; _defer_by=1 for the delayed half"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


async def work(url: str, n: int, scenario: str, max_jobs: int, poll_delay: float) -> None:
    from arq.worker import Worker, func  # type: ignore[import-not-found, unused-ignore]

    counter = _common.install_counter(n, scenario)
    config = f"1 process, max_jobs={max_jobs}, poll_delay={poll_delay}s"
    max_tries = None  # arq's default, 5
    if scenario == "mixed":
        max_tries = 4
        config += "; retries: raise Retry(defer=1), max_tries=4"
    worker = Worker(
        functions=[func(noop, name="noop", max_tries=max_tries)],
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
    if a.scenario == "weighted":
        _common.unsupported(a.scenario, NO_WEIGHTS)
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks, a.scenario))
    else:
        asyncio.run(work(a.url, a.tasks, a.scenario, a.max_jobs, a.poll_delay))


if __name__ == "__main__":
    main()
