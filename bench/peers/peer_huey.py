"""Huey peer: producer and consumer, run inside Huey's venv by ``run.py``.

Config knobs: ``--workers`` and ``--worker-type`` (thread/process/greenlet; only ``thread`` keeps
to one process). ``results=False``: no result is stored, as with every peer here. Timing: in
this process (see ``_common``); with ``--worker-type process`` the shared counter still works
because it is created before Huey forks.
"""

from __future__ import annotations

import time
from typing import Any

import _common

DIST = "huey"


def _huey(url: str) -> tuple[Any, Any]:
    from huey import RedisHuey  # type: ignore[import-not-found, unused-ignore]

    # blocking=True (the default) pops with BRPOP instead of polling with a back-off.
    huey = RedisHuey("bench", url=url, results=False, blocking=True)
    noop = huey.task(name="noop")(_common.hit)
    return huey, noop


def produce(url: str, n: int) -> None:
    _, noop = _huey(url)
    t0 = time.perf_counter()
    for _ in range(n):
        noop()
    _common.emit_enqueue(n, time.perf_counter() - t0, "task() call, results=False", DIST)


def work(url: str, n: int, workers: int, worker_type: str) -> None:
    huey, _ = _huey(url)
    counter = _common.install_counter(n)
    procs = f"{workers} processes" if worker_type == "process" else "1 process"
    config = f"{procs}, workers={workers}, worker_type={worker_type}"
    consumer = huey.create_consumer(
        workers=workers, worker_type=worker_type, periodic=False, check_worker_health=False
    )
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    consumer.run()


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--worker-type", choices=["thread", "process", "greenlet"], default="thread")
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks)
    else:
        work(a.url, a.tasks, a.workers, a.worker_type)


if __name__ == "__main__":
    main()
