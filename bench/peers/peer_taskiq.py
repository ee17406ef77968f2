"""taskiq peer (with taskiq-redis): producer and worker, run inside taskiq's venv by ``run.py``.

Knobs: ``--broker`` (``list``: ListQueueBroker, LPUSH/BRPOP, no acknowledgement, a task whose
worker dies is lost; ``stream``: RedisStreamBroker, consumer group with acks, the one that
matches the at-least-once delivery of ferroq and asynq) and ``--max-async-tasks``. The worker
is taskiq's own receiver loop (``run_receiver_task``), which is what each ``taskiq worker``
process runs; one process here. No result backend. Timing: in this process.

Scenarios (``_common``): *mixed* delays with ``schedule_by_time(source, now + 1 s)`` on a
``ListRedisScheduleSource``, and retries with ``SmartRetryMiddleware(schedule_source=...,
default_delay=1)``: taskiq's brokers ignore a ``delay`` label, so a delayed task is a one-off
schedule that a scheduler sends when due. That scheduler is run in the worker process, with
taskiq's ``run_scheduler_task`` next to ``run_receiver_task`` (what ``taskiq scheduler`` would
run as a separate process), re-reading the source every 1 s (``interval``; the CLI default is
1 min) and sending due tasks at each whole second. *weighted* needs ``--broker stream``: its
worker reads the streams ``high``, ``default`` and ``low`` with one XREADGROUP (the broker's
``additional_streams``), up to ``xread_count`` = 100 from each; the producer picks the stream
with the ``queue_name`` label. No weights. ListQueueBroker BRPOPs one list: unsupported.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import _common

DIST = "taskiq"
LIST_ONE_QUEUE = (
    "taskiq-redis ListQueueBroker BRPOPs its one queue_name (taskiq_redis/redis_broker.py:"
    " ListQueueBroker.listen); RedisStreamBroker (--broker stream) reads several"
)


async def noop(k: int) -> None:
    """The task."""
    _common.task(k)


def _broker(url: str, kind: str, scenario: str) -> tuple[Any, Any]:
    from taskiq_redis import (  # type: ignore[import-not-found, unused-ignore]
        ListQueueBroker,
        RedisStreamBroker,
    )

    if kind == "list":
        broker = ListQueueBroker(url, queue_name="bench")
    elif scenario == "weighted":
        first, *others = _common.WEIGHTS
        broker = RedisStreamBroker(
            url,
            queue_name=first,
            consumer_id="0",
            additional_streams={name: ">" for name in others},
        )
    else:
        # consumer_id "0": a group created by either side also delivers the earlier backlog.
        broker = RedisStreamBroker(url, queue_name="bench", consumer_id="0")
    return broker, broker.register_task(noop, task_name="noop")


def _source(url: str) -> Any:
    from taskiq_redis import ListRedisScheduleSource  # type: ignore[import-not-found, unused-ignore]

    return ListRedisScheduleSource(url)


def _broker_name(kind: str) -> str:
    return "ListQueueBroker" if kind == "list" else "RedisStreamBroker"


async def produce(url: str, n: int, scenario: str, kind: str) -> None:
    broker, task = _broker(url, kind, scenario)
    await broker.startup()
    source = None
    if scenario == "mixed":
        source = _source(url)
        await source.startup()
    # A kicker per queue, made before the clock starts: the label picks the stream.
    kickers = {name: task.kicker().with_labels(queue_name=name) for name in _common.WEIGHTS}
    tasks = [(k, task if q is None else kickers[q], d) for k, q, d in _common.plan(scenario, n)]
    # One awaited call per task: the asyncio analogue of a blocking one-call-per-task loop.
    t0 = time.perf_counter()
    for k, kicker, delay in tasks:
        if delay:
            when = datetime.now(timezone.utc) + timedelta(seconds=delay)
            await kicker.schedule_by_time(source, when, k)
        else:
            await kicker.kiq(k)
    config = f"await kiq() each, {_broker_name(kind)}"
    if scenario == "mixed":
        config += "; schedule_by_time(ListRedisScheduleSource, now+1 s) for the delayed half"
    elif scenario == "weighted":
        config += ", with_labels(queue_name=...)"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


async def work(url: str, n: int, scenario: str, kind: str, max_async_tasks: int) -> None:
    from taskiq import (  # type: ignore[import-not-found, unused-ignore]
        SmartRetryMiddleware,
        TaskiqScheduler,
    )
    from taskiq.api import (  # type: ignore[import-not-found, unused-ignore]
        run_receiver_task,
        run_scheduler_task,
    )

    broker, _ = _broker(url, kind, scenario)
    counter = _common.install_counter(n, scenario)
    config = f"1 process, {_broker_name(kind)}, max_async_tasks={max_async_tasks}"
    runners = []
    if scenario == "mixed":
        source = _source(url)
        broker.add_middlewares(
            SmartRetryMiddleware(
                default_retry_count=4,  # counts attempts: 3 retries
                default_retry_label=True,
                default_delay=_common.DELAY,
                schedule_source=source,
            )
        )
        scheduler = TaskiqScheduler(broker, [source])
        runners.append(run_scheduler_task(scheduler, interval=timedelta(seconds=1)))
        config += (
            "; scheduler in this process (run_scheduler_task, ListRedisScheduleSource,"
            " interval=1s); retries: SmartRetryMiddleware, default_delay=1, 3 retries"
        )
    elif scenario == "weighted":
        config += (
            "; streams high,default,low in one XREADGROUP, up to 100 from each"
            " (taskiq has no weights)"
        )
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    await broker.startup()
    receiver = run_receiver_task(broker, max_async_tasks=max_async_tasks)
    await (asyncio.gather(receiver, *runners) if runners else receiver)


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--broker", choices=["list", "stream"], default="stream")
    p.add_argument("--max-async-tasks", type=int, default=100)
    a = p.parse_args()
    if a.scenario == "weighted" and a.broker == "list":
        _common.unsupported(a.scenario, LIST_ONE_QUEUE)
    _common.quiet()
    if a.role == "produce":
        asyncio.run(produce(a.url, a.tasks, a.scenario, a.broker))
    else:
        asyncio.run(work(a.url, a.tasks, a.scenario, a.broker, a.max_async_tasks))


if __name__ == "__main__":
    main()
