"""RQ peer: producer and worker, run inside RQ's venv by ``run.py``.

Best one-process config: ``SimpleWorker`` in burst mode. RQ's default ``Worker`` starts a new
process per job (``posix_spawn`` in RQ 3), which is much slower for no-op jobs; it can be
measured with ``--worker fork``. Timing: in this process (see ``_common``).

Scenarios (``_common``): *mixed* delays with ``enqueue_in()`` and gives every job
``Retry(max=3, interval=1)`` (RQ sets retries per job, at enqueue). Both need RQ's scheduler,
which moves due jobs from the scheduled registry every second and always runs as a forked
process; a burst worker would only move them once and quit before they are due, so this
scenario runs a non-burst worker ``with_scheduler``. *weighted* puts the jobs on the queues
``high``, ``default`` and ``low``; RQ has no weights, the worker takes them in round-robin order
(``DequeueStrategy.ROUND_ROBIN``; the default is strict order).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import _common

DIST = "rq"
QUEUE = "bench"


def noop(k: int) -> None:
    """The job: the worker imports it as ``peer_rq.noop`` (this directory is on sys.path)."""
    _common.task(k)


def _queue(url: str, name: str = QUEUE) -> Any:
    from redis import Redis  # type: ignore[import-not-found, unused-ignore]
    from rq import Queue  # type: ignore[import-not-found, unused-ignore]

    return Queue(name, connection=Redis.from_url(url))


def produce(url: str, n: int, scenario: str, result_ttl: int) -> None:
    from rq import Queue, Retry  # type: ignore[import-not-found, unused-ignore]

    q = _queue(url)
    queues = {name: Queue(name, connection=q.connection) for name in _common.WEIGHTS}
    options: dict[str, Any] = {"result_ttl": result_ttl}
    config = f"enqueue(result_ttl={result_ttl})"
    if scenario == "mixed":
        options["retry"] = Retry(max=3, interval=int(_common.DELAY))
        config += ", retry=Retry(max=3, interval=1); enqueue_in(1 s) for the delayed half"
    tasks = [
        (k, q if name is None else queues[name], delay)
        for k, name, delay in _common.plan(scenario, n)
    ]
    # By dotted path: the producer never imports the job's module in real deployments either.
    t0 = time.perf_counter()
    for k, queue, delay in tasks:
        if delay:
            queue.enqueue_in(timedelta(seconds=delay), "peer_rq.noop", k, **options)
        else:
            queue.enqueue("peer_rq.noop", k, **options)
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


def work(url: str, n: int, scenario: str, kind: str) -> None:
    from rq import SimpleWorker, Worker  # type: ignore[import-not-found, unused-ignore]
    from rq.worker import DequeueStrategy  # type: ignore[import-not-found, unused-ignore]

    q = _queue(url)
    counter = _common.install_counter(n, scenario)
    cls = SimpleWorker if kind == "simple" else Worker
    queues = [q]
    options: dict[str, Any] = {"burst": True}
    config = f"{cls.__name__}, burst"
    if scenario == "mixed":
        options = {"burst": False, "with_scheduler": True}
        config = (
            f"{cls.__name__}, not burst, with_scheduler (RQ's scheduler: a forked process,"
            " polls every 1 s); retries: Retry(max=3, interval=1) per job"
        )
    elif scenario == "weighted":
        queues = [_queue(url, name) for name in _common.WEIGHTS]
        options["dequeue_strategy"] = DequeueStrategy.ROUND_ROBIN
        config += "; queues high,default,low in round-robin order (RQ has no weights)"
    w = cls(queues, connection=q.connection)
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST, kill_children=True)
    w.work(logging_level="WARNING", **options)
    time.sleep(3600)  # burst mode returned: the watcher thread reports and exits the process


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--worker", choices=["simple", "fork"], default="simple")
    # 0: results are not kept, as with every peer here (ferroq and asynq keep none by default).
    p.add_argument("--result-ttl", type=int, default=0)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks, a.scenario, a.result_ttl)
    else:
        work(a.url, a.tasks, a.scenario, a.worker)


if __name__ == "__main__":
    main()
