"""ferroq as a peer: producer and worker, run by ``run.py`` with the interpreter ferroq is in.

The same roles, scenarios and timing as every other peer (see ``_common``), so that ferroq's row
is measured exactly like theirs: tasks of type ``noop`` with the JSON payload ``{"data": k}``,
routed by a ``ServeMux``, enqueued one ``Client.enqueue`` call each. Knobs: ``--concurrency``
and ``--handler`` (``sync`` or ``async``). Every other server setting is ferroq's default (the
5 s delayed-task check interval, the 1 s poll fallback); the mixed scenario sets the retry
delay to ``_common.DELAY`` as the other peers do.
"""

from __future__ import annotations

import json
import time

import _common

from ferroq import Client, ServeMux, Server, Task

DIST = "ferroq"


def produce(url: str, n: int, scenario: str) -> None:
    plan = [
        (Task("noop", json.dumps({"data": k}).encode()), q, d)
        for k, q, d in _common.plan(scenario, n)
    ]
    with Client(url) as client:
        client.ping()  # connect before the clock starts
        t0 = time.perf_counter()
        for task, queue, delay in plan:
            client.enqueue(task, queue=queue, process_in=delay or None)
        seconds = time.perf_counter() - t0
    _common.emit_enqueue(n, seconds, "Client.enqueue each", DIST)


def work(url: str, n: int, scenario: str, concurrency: int, handler: str) -> None:
    counter = _common.install_counter(n, scenario)
    mux = ServeMux()
    if handler == "async":

        async def noop_async(task: Task) -> None:
            _common.task(json.loads(task.payload)["data"])

        mux.handle("noop", noop_async)
    else:
        mux.handle("noop", lambda task: _common.task(json.loads(task.payload)["data"]))
    config = f"1 process, Server concurrency={concurrency}, {handler} handler"
    queues = None
    if scenario == "weighted":
        queues = dict(_common.WEIGHTS)
        config += ", queues high:6 default:3 low:1"
    server = Server(
        url,
        concurrency=concurrency,
        queues=queues,
        retry_delay=lambda retried, error, task: _common.DELAY,
    )
    t0 = time.perf_counter()
    server.start(mux)
    _common.finish_work(counter, t0, config, DIST)


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--handler", choices=["sync", "async"], default="sync")
    a = p.parse_args()
    _common.quiet()
    _common.version(DIST)  # fail early if this interpreter has no ferroq
    if a.role == "produce":
        produce(a.url, a.tasks, a.scenario)
    else:
        work(a.url, a.tasks, a.scenario, a.concurrency, a.handler)


if __name__ == "__main__":
    main()
