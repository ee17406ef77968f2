"""RQ peer: producer and worker, run inside RQ's venv by ``run.py``.

Best one-process config: ``SimpleWorker`` in burst mode. RQ's default ``Worker`` starts a new
process per job (``posix_spawn`` in RQ 3), which is much slower for no-op jobs; it can be
measured with ``--worker fork``. Timing: in this process (see ``_common``).
"""

from __future__ import annotations

import time
from typing import Any

import _common

DIST = "rq"
QUEUE = "bench"


def noop() -> None:
    """The job: the worker imports it as ``peer_rq.noop`` (this directory is on sys.path)."""
    _common.hit()


def _queue(url: str) -> Any:
    from redis import Redis  # type: ignore[import-not-found, unused-ignore]
    from rq import Queue  # type: ignore[import-not-found, unused-ignore]

    return Queue(QUEUE, connection=Redis.from_url(url))


def produce(url: str, n: int, result_ttl: int) -> None:
    q = _queue(url)
    # By dotted path: the producer never imports the job's module in real deployments either.
    t0 = time.perf_counter()
    for _ in range(n):
        q.enqueue("peer_rq.noop", result_ttl=result_ttl)
    _common.emit_enqueue(n, time.perf_counter() - t0, f"enqueue(result_ttl={result_ttl})", DIST)


def work(url: str, n: int, kind: str) -> None:
    from rq import SimpleWorker, Worker  # type: ignore[import-not-found, unused-ignore]

    q = _queue(url)
    counter = _common.install_counter(n)
    cls = SimpleWorker if kind == "simple" else Worker
    config = f"{cls.__name__}, burst"
    w = cls([q], connection=q.connection)
    t0 = time.perf_counter()
    _common.finish_work_in_thread(counter, t0, config, DIST)
    w.work(burst=True, logging_level="WARNING")
    time.sleep(3600)  # burst mode returned: the watcher thread reports and exits the process


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--worker", choices=["simple", "fork"], default="simple")
    # 0: results are not kept, as with every peer here (ferroq and asynq keep none by default).
    p.add_argument("--result-ttl", type=int, default=0)
    a = p.parse_args()
    _common.quiet()
    if a.role == "produce":
        produce(a.url, a.tasks, a.result_ttl)
    else:
        work(a.url, a.tasks, a.worker)


if __name__ == "__main__":
    main()
