"""taskiq peer (with taskiq-redis): producer and worker, run inside taskiq's venv by ``run.py``.

Knobs: ``--broker`` (``list``: ListQueueBroker, LPUSH/BRPOP, no acknowledgement, a task whose
worker dies is lost; ``stream``: RedisStreamBroker, consumer group with acks, the one that
matches the at-least-once delivery of ferroq and asynq) and ``--max-async-tasks``. The worker
is taskiq's own receiver loop (``run_receiver_task``), which is what each ``taskiq worker``
process runs; one process here. No result backend. Timing: in this process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common

DIST = "taskiq"


async def noop() -> None:
    """The task."""
    _common.hit()


def _broker(url: str, kind: str) -> tuple[Any, Any]:
    from taskiq_redis import (  # type: ignore[import-not-found, unused-ignore]
        ListQueueBroker,
        RedisStreamBroker,
    )

    if kind == "list":
        broker = ListQueueBroker(url, queue_name="bench")
    else:
        # consumer_id "0": a group created by either side also delivers the earlier backlog.
        broker = RedisStreamBroker(url, queue_name="bench", consumer_id="0")
    return broker, broker.register_task(noop, task_name="noop")


def _broker_name(kind: str) -> str:
    return "ListQueueBroker" if kind == "list" else "RedisStreamBroker"


async def produce(url: str, n: int, kind: str) -> None:
    broker, task = _broker(url, kind)
    await broker.startup()
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for _ in range(n):
        await task.kiq()
    config = f"await kiq() each, {_broker_name(kind)}"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


async def work(url: str, n: int, kind: str, max_async_tasks: int) -> None:
    from taskiq.api import run_receiver_task  # type: ignore[import-not-found, unused-ignore]

    broker, _ = _broker(url, kind)
    counter = _common.install_counter(n)
    config = f"1 process, {_broker_name(kind)}, max_async_tasks={max_async_tasks}"
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    await broker.startup()
    await run_receiver_task(broker, max_async_tasks=max_async_tasks)


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--broker", choices=["list", "stream"], default="stream")
    p.add_argument("--max-async-tasks", type=int, default=100)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks, a.broker))
    else:
        asyncio.run(work(a.url, a.tasks, a.broker, a.max_async_tasks))


if __name__ == "__main__":
    main()
