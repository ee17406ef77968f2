"""Enqueueing from asyncio, one peer per run: 50 coroutines enqueue while the loop is timed.

Run inside the peer's venv by ``asyncio_run.py``: ``python peer_aio.py PEER --url URL
--seconds S``. ``--coroutines`` coroutines (default 50) enqueue for ``S`` seconds, each awaiting
one library call per task; a heartbeat coroutine sleeps 1 ms at a time and records how late each
wake-up was (the loop's lag). A fixed duration, not a fixed count, so that every peer's lag is
sampled as often (a fast peer would otherwise give a handful of samples). One result line: the
enqueue rate and the lag's p50, p99 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common

Enqueue = Callable[[int], Awaitable[Any]]


async def ferroq_setup(url: str) -> tuple[Enqueue, str, str]:
    from ferroq import AsyncClient, Task

    client = AsyncClient(url)
    await client.ping()

    async def enqueue(k: int) -> Any:
        return await client.enqueue(Task("noop", b"%d" % k), queue="bench")

    return enqueue, "await AsyncClient.enqueue() each", "ferroq"


async def arq_setup(url: str) -> tuple[Enqueue, str, str]:
    from arq import create_pool  # type: ignore[import-not-found, unused-ignore]
    from arq.connections import RedisSettings  # type: ignore[import-not-found, unused-ignore]

    pool = await create_pool(RedisSettings.from_dsn(url))

    async def enqueue(k: int) -> Any:
        return await pool.enqueue_job("noop", k)

    return enqueue, "await enqueue_job() each", "arq"


async def saq_setup(url: str) -> tuple[Enqueue, str, str]:
    from saq import Queue  # type: ignore[import-not-found, unused-ignore]

    q = Queue.from_url(url, name="bench")
    await q.connect()

    async def enqueue(k: int) -> Any:
        return await q.enqueue("noop", k=k)

    return enqueue, "await Queue.enqueue() each", "saq"


async def taskiq_setup(url: str) -> tuple[Enqueue, str, str]:
    from taskiq_redis import ListQueueBroker  # type: ignore[import-not-found, unused-ignore]

    broker = ListQueueBroker(url, queue_name="bench")

    async def noop(k: int) -> None: ...

    task = broker.register_task(noop, task_name="noop")
    await broker.startup()

    async def enqueue(k: int) -> Any:
        return await task.kiq(k)

    return enqueue, "await kiq() each, ListQueueBroker", "taskiq"


SETUPS = {"ferroq": ferroq_setup, "arq": arq_setup, "saq": saq_setup, "taskiq": taskiq_setup}


async def measure(peer: str, url: str, seconds: float, coroutines: int) -> None:
    enqueue, config, dist = await SETUPS[peer](url)
    await enqueue(-1)  # connections made before the clock starts
    lags: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    async def producer() -> int:
        n = 0
        while time.perf_counter() < stop:
            await enqueue(n)
            n += 1
        return n

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    lags.clear()
    t0 = time.perf_counter()
    stop = t0 + seconds
    tasks = sum(await asyncio.gather(*(producer() for _ in range(coroutines))))
    seconds = time.perf_counter() - t0
    done.set()
    await beat
    q = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [0.0] * 99
    _common.emit(
        role="produce", tasks=tasks, rate=tasks / seconds,
        config=f"{config}, {coroutines} coroutines",
        version=_common.version(dist), lag_p50_ms=q[49] * 1e3, lag_p99_ms=q[98] * 1e3,
        lag_max_ms=max(lags, default=0.0) * 1e3, beats=len(lags),
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("peer", choices=sorted(SETUPS))
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--coroutines", type=int, default=50)
    a = p.parse_args()
    _common.quiet()
    asyncio.run(measure(a.peer, a.url, a.seconds, a.coroutines))


if __name__ == "__main__":
    main()
