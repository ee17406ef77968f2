"""ferroq as a peer: producer and worker, run by ``run.py`` with the interpreter ferroq is in.

The same roles, scenarios and timing as every other peer (see ``_common``), so that ferroq's row
is measured exactly like theirs: tasks of type ``noop`` with the JSON payload ``{"data": k}``,
routed by a ``ServeMux``, enqueued one ``Client.enqueue`` call each. Knobs: ``--concurrency``,
``--handler`` (``sync`` or ``async``) and ``--processes`` (``ferroq worker --processes N`` on
``ferroq_workload:mux``; its spawned children share no memory with this process, so the last
completion is read from Redis, from asynq's processed counter, polled every 2 ms). Every other
server setting is ferroq's default (the 5 s delayed-task check interval, the 1 s poll
fallback); the mixed scenario sets the retry delay to ``_common.DELAY`` as the other peers do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def work_processes(url: str, n: int, scenario: str, concurrency: int, processes: int) -> None:
    """The worker role with ``ferroq worker --processes``: timed from the supervisor's start."""
    import redis

    if scenario != "simple" and scenario != "cpu":
        _common.unsupported(scenario, "the multi-process row runs the simple and cpu scenarios")
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": str(here), "FERROQ_BENCH_SCENARIO": scenario}
    r = redis.Redis.from_url(url)
    processed = "asynq:{default}:processed"
    t0 = time.perf_counter()
    sup = subprocess.Popen(
        [sys.executable, "-m", "ferroq", "worker", "ferroq_workload:mux", "--redis", url,
         "--processes", str(processes), "--concurrency", str(concurrency), "--log-level",
         "warning"],
        env=env,
    )  # fmt: skip
    first = 0.0
    while True:
        done = int(r.get(processed) or 0)
        now = time.perf_counter()
        if done and not first:
            first = now
        if done >= n:
            break
        if sup.poll() is not None:
            raise RuntimeError(f"ferroq worker exited {sup.returncode} after {done} of {n} tasks")
        time.sleep(0.002)
    sup.send_signal(signal.SIGTERM)
    _common.emit(
        role="work",
        scenario=scenario,
        failures=0,
        tasks=n,
        rate=n / (now - t0),
        first_ms=(first - t0) * 1000,
        config=f"{processes} processes (ferroq worker --processes), concurrency={concurrency} each",
        version=_common.version(DIST),
    )
    sup.wait(30)


def main() -> None:
    p = _common.parser(__doc__)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--handler", choices=["sync", "async"], default="sync")
    p.add_argument("--processes", type=int, default=1)
    a = p.parse_args()
    _common.quiet()
    _common.version(DIST)  # fail early if this interpreter has no ferroq
    if a.role == "produce":
        produce(a.url, a.tasks, a.scenario)
    elif a.processes > 1:
        work_processes(a.url, a.tasks, a.scenario, a.concurrency, a.processes)
    else:
        work(a.url, a.tasks, a.scenario, a.concurrency, a.handler)


if __name__ == "__main__":
    main()
