"""Celery peer: producer and worker, run inside Celery's venv by ``run.py``.

The worker runs in this process via ``worker_main`` so the shared counter sees every task; with
``--pool prefork`` the counter lives in shared memory created before billiard forks. Knobs:
pool (solo/threads/prefork), concurrency, prefetch multiplier. gossip, mingle and heartbeat are
off: they are cluster chatter that only slows start-up. ``ignore_result``: no result backend, as
with every peer here. Timing: in this process (see ``_common``).
"""

from __future__ import annotations

import time
from typing import Any

import _common

DIST = "celery"


def _app(url: str) -> tuple[Any, Any]:
    from celery import Celery  # type: ignore[import-not-found, unused-ignore]

    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
    )
    noop = app.task(name="noop", ignore_result=True)(_common.hit)
    return app, noop


def produce(url: str, n: int) -> None:
    _, noop = _app(url)
    noop.app.connection_for_write().ensure_connection()  # connect before the clock starts
    t0 = time.perf_counter()
    for _ in range(n):
        noop.delay()
    _common.emit_enqueue(n, time.perf_counter() - t0, "delay(), ignore_result", DIST)


def work(url: str, n: int, pool: str, concurrency: int, prefetch: int) -> None:
    app, _ = _app(url)
    counter = _common.install_counter(n)
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
        produce(a.url, a.tasks)
    else:
        work(a.url, a.tasks, a.pool, a.concurrency, a.prefetch)


if __name__ == "__main__":
    main()
