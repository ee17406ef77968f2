"""Dramatiq peer: producer and worker, run inside Dramatiq's venv by ``run.py``.

Knobs: ``--threads`` (worker threads per process), ``--prefetch`` (Redis messages fetched per
batch; Dramatiq's default is 2 x threads) and ``--processes``. With one process (the rule) the
``Worker`` runs in this process, as ``dramatiq`` CLI's worker processes do; with more, this
process forks that many workers, like the CLI does, and the shared counter (created before the
fork) still sees every message. Default middleware kept. Timing: in this process.

Scenarios (``_common``): *mixed* delays with ``send_with_options(delay=1000)`` (the message
waits on the queue's delay queue, which every worker also consumes and re-enqueues when due)
and retries with the Retries middleware: the actor gets ``max_retries=3`` and the planned
failure is re-raised as ``dramatiq.Retry(delay=1000)``, an exact 1 s, where
``min_backoff=max_backoff=1000`` would jitter to 0.5-1 s. *weighted* needs an actor per queue
(the queue is the actor's, not the message's): ``noop_high``, ``noop`` (queue ``default``) and
``noop_low``. The worker consumes every declared queue with its own consumer thread and prefetch;
Dramatiq has no queue weights, and the actors keep the same priority.
"""

from __future__ import annotations

import os
import time
from typing import Any

import _common

DIST = "dramatiq"
DEFAULT_QUEUE = "default"  # Dramatiq's default queue_name, also the weighted scenario's middle one


def _retrying(k: int) -> None:
    """Task body of the mixed scenario: the planned failure asks for a retry in exactly 1 s."""
    try:
        _common.task(k)
    except _common.PlannedFailure as e:
        import dramatiq  # type: ignore[import-not-found, unused-ignore]

        raise dramatiq.Retry(str(e), delay=int(_common.DELAY * 1000)) from e


def _broker(url: str, scenario: str) -> tuple[Any, dict[str, Any]]:
    """The broker and the actors, by queue name (only the weighted scenario has three)."""
    import dramatiq  # type: ignore[import-not-found, unused-ignore]
    from dramatiq.brokers.redis import RedisBroker  # type: ignore[import-not-found, unused-ignore]

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    if scenario == "mixed":
        noop = dramatiq.actor(_retrying, actor_name="noop", max_retries=3, broker=broker)
    else:
        noop = dramatiq.actor(_common.task, actor_name="noop", max_retries=0, broker=broker)
    actors = {DEFAULT_QUEUE: noop}
    if scenario == "weighted":
        for name in _common.WEIGHTS:
            if name != DEFAULT_QUEUE:
                actors[name] = dramatiq.actor(
                    _common.task,
                    actor_name=f"noop_{name}",
                    queue_name=name,
                    max_retries=0,
                    broker=broker,
                )
    return broker, actors


def produce(url: str, n: int, scenario: str) -> None:
    broker, actors = _broker(url, scenario)
    tasks = [(k, actors[q or DEFAULT_QUEUE], d) for k, q, d in _common.plan(scenario, n)]
    broker.client.ping()  # connect before the clock starts
    t0 = time.perf_counter()
    for k, actor, delay in tasks:
        if delay:
            actor.send_with_options(args=(k,), delay=int(delay * 1000))
        else:
            actor.send(k)
    config = "send()"
    if scenario == "mixed":
        config += "; send_with_options(delay=1000) for the delayed half"
    _common.emit_enqueue(n, time.perf_counter() - t0, config, DIST)


def _run_worker(url: str, scenario: str, threads: int) -> None:
    from dramatiq import Worker  # type: ignore[import-not-found, unused-ignore]

    broker, _ = _broker(url, scenario)
    Worker(broker, worker_threads=threads).start()


def work(url: str, n: int, scenario: str, processes: int, threads: int, prefetch: int) -> None:
    if prefetch:
        # Read by dramatiq.worker at import time, so set before the first import below.
        os.environ["dramatiq_queue_prefetch"] = str(prefetch)  # noqa: SIM112 (its exact name)
    counter = _common.install_counter(n, scenario)
    pf = prefetch or 2 * threads
    config = f"{processes} process{'es' if processes > 1 else ''}, threads={threads}, prefetch={pf}"
    if scenario == "mixed":
        config += "; retries: max_retries=3, raise Retry(delay=1000)"
    elif scenario == "weighted":
        config += (
            "; queues high,default,low side by side (a consumer thread each, equal actor"
            " priority; Dramatiq has no weights)"
        )
    children: list[int] = []
    t0 = time.perf_counter()
    if processes == 1:
        _run_worker(url, scenario, threads)
    else:
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:
                _run_worker(url, scenario, threads)
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
        produce(a.url, a.tasks, a.scenario)
    else:
        work(a.url, a.tasks, a.scenario, a.processes, a.threads, a.prefetch)


if __name__ == "__main__":
    main()
