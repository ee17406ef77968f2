"""Celery peer: producer and worker, run inside Celery's venv by ``run.py``.

The worker runs in this process via ``worker_main`` so the shared counter sees every task; with
``--pool prefork`` the counter lives in shared memory created before billiard forks. Knobs:
pool (solo/threads/prefork), concurrency, prefetch multiplier. gossip, mingle and heartbeat are
off: they are cluster chatter that only slows start-up. ``ignore_result``: no result backend, as
with every peer here. Timing: in this process (see ``_common``).

Scenarios (``_common``): *mixed* delays with ``apply_async(countdown=1)`` (an ETA message the
worker holds until it is due) and retries with ``autoretry_for`` and ``countdown=1`` (set only in
that scenario); *weighted* sends with ``apply_async(queue=...)`` and runs the worker with
``-Q high,default,low``. Celery has no queue weights: kombu's Redis transport BRPOPs the queues
in round-robin order (its default ``queue_order_strategy``).
"""

from __future__ import annotations

import time
from typing import Any

import _common

DIST = "celery"


def _app(url: str, scenario: str) -> tuple[Any, Any]:
    from celery import Celery  # type: ignore[import-not-found, unused-ignore]

    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
    )
    options: dict[str, Any] = {}
    if scenario == "mixed":
        options = {
            "autoretry_for": (_common.PlannedFailure,),
            "retry_kwargs": {"countdown": _common.DELAY},
            "max_retries": 3,
        }
    noop = app.task(name="noop", ignore_result=True, **options)(_common.task)
    return app, noop


def produce(url: str, n: int, scenario: str) -> None:
    _, noop = _app(url, scenario)
    tasks = _common.plan(scenario, n)
    noop.app.connection_for_write().ensure_connection()  # connect before the clock starts
    t0 = time.perf_counter()
    for k, queue, delay in tasks:
        if queue is None and not delay:
            noop.delay(k)
        else:
            noop.apply_async((k,), queue=queue, countdown=delay or None)
    config = "delay(), ignore_result"
    if scenario == "mixed":
        config += "; apply_async(countdown=1) for the delayed half"
    elif scenario == "weighted":
        config = "apply_async(queue=...), ignore_result"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


def work(url: str, n: int, scenario: str, pool: str, concurrency: int, prefetch: int) -> None:
    app, _ = _app(url, scenario)
    counter = _common.install_counter(n, scenario)
    procs = f"1+{concurrency} processes" if pool == "prefork" else "1 process"
    config = f"{procs}, pool={pool}, concurrency={concurrency}, prefetch_multiplier={prefetch}"
    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--prefetch-multiplier={prefetch}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if scenario == "mixed":
        config += "; retries: autoretry_for, countdown=1, max_retries=3"
    elif scenario == "weighted":
        argv.append("--queues=" + ",".join(_common.WEIGHTS))
        config += "; queues high,default,low in round-robin order (Celery has no weights)"
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    app.worker_main(argv)


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--pool", choices=["solo", "threads", "prefork"], default="solo")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--prefetch", type=int, default=4)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks, a.scenario)
    else:
        work(a.url, a.tasks, a.scenario, a.pool, a.concurrency, a.prefetch)


if __name__ == "__main__":
    main()
