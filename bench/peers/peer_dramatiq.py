"""Dramatiq peer: producer and worker, run inside Dramatiq's venv by ``run.py``.

Knobs: ``--threads`` (worker threads per process), ``--prefetch`` (Redis messages fetched per
batch; Dramatiq's default is 2 x threads) and ``--processes``. With one process (the rule) the
``Worker`` runs in this process, as ``dramatiq`` CLI's worker processes do; with more, this
process forks that many workers, like the CLI does, and the shared counter (created before the
fork) still sees every message. Default middleware kept. Timing: in this process.
"""

from __future__ import annotations

import os
import time
from typing import Any

import _common

DIST = "dramatiq"


def _broker(url: str) -> tuple[Any, Any]:
    import dramatiq  # type: ignore[import-not-found, unused-ignore]
    from dramatiq.brokers.redis import RedisBroker  # type: ignore[import-not-found, unused-ignore]

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    noop = dramatiq.actor(_common.hit, actor_name="noop", max_retries=0, broker=broker)
    return broker, noop


def produce(url: str, n: int) -> None:
    broker, noop = _broker(url)
    broker.client.ping()  # connect before the clock starts
    t0 = time.perf_counter()
    for _ in range(n):
        noop.send()
    _common.emit_enqueue(n, time.perf_counter() - t0, "send()", DIST)


def _run_worker(url: str, threads: int) -> None:
    from dramatiq import Worker  # type: ignore[import-not-found, unused-ignore]

    broker, _ = _broker(url)
    Worker(broker, worker_threads=threads).start()


def work(url: str, n: int, processes: int, threads: int, prefetch: int) -> None:
    if prefetch:
        # Read by dramatiq.worker at import time, so set before the first import below.
        os.environ["dramatiq_queue_prefetch"] = str(prefetch)  # noqa: SIM112 (its exact name)
    counter = _common.install_counter(n)
    pf = prefetch or 2 * threads
    config = f"{processes} process{'es' if processes > 1 else ''}, threads={threads}, prefetch={pf}"
    children: list[int] = []
    t0 = time.perf_counter()
    if processes == 1:
        _run_worker(url, threads)
    else:
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:
                _run_worker(url, threads)
                while True:  # worker threads run until the parent kills this process
                    time.sleep(3600)
            children.append(pid)
    _common.finish_work(counter, t0, config, DIST, tuple(children))


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--prefetch", type=int, default=0, help="0: Dramatiq's default")
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks)
    else:
        work(a.url, a.tasks, a.processes, a.threads, a.prefetch)


if __name__ == "__main__":
    main()
