"""End-to-end throughput of ferroq alone on one machine (the peer comparison is a later step).

Run: ``python bench/throughput.py [--tasks N]`` (``make bench``). Starts a private Redis unless
``REDIS_URL`` is set, and prints one line per scenario: median of three runs.

``python bench/throughput.py --only SCENARIO [--json] [--tasks N]`` measures one scenario once
(flushing the db first) and, with ``--json``, prints it as one JSON object on stdout:
``{"scenario": "sync", "value": 51234.5, "unit": "tasks/s"}``, or for ``round_trip``
``{"scenario": "round_trip", "p50": 0.35, "p99": 0.6, "unit": "ms"}``. ``bench/compare.py``
runs it this way under two interpreters, so it uses only ferroq's public API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import redis

from ferroq import Client, ServeMux, Server, Task


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """``$REDIS_URL``, or a private embedded Redis for the duration."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from ferroq._embedded import EmbeddedRedis

    with EmbeddedRedis() as embedded:
        yield embedded.url


def enqueue_one_by_one(url: str, n: int) -> float:
    with Client(url) as c:
        t0 = time.perf_counter()
        for _ in range(n):
            c.enqueue(Task("noop"))
        return n / (time.perf_counter() - t0)


def enqueue_many(url: str, n: int) -> float:
    with Client(url) as c:
        tasks = [Task("noop") for _ in range(n)]
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            c.enqueue_many(tasks[i : i + 1000])
        return n / (time.perf_counter() - t0)


def process(url: str, n: int, *, asynchronous: bool) -> float:
    with Client(url) as c:
        for i in range(0, n, 1000):
            c.enqueue_many([Task("noop") for _ in range(min(1000, n - i))])
    done = threading.Semaphore(0)
    mux = ServeMux()
    if asynchronous:

        async def noop_async(task: Task) -> None:
            done.release()

        mux.handle("noop", noop_async)
    else:
        mux.handle("noop", lambda task: done.release())
    server = Server(url, concurrency=64, task_check_interval=0.05)
    t0 = time.perf_counter()
    server.start(mux)
    for _ in range(n):
        done.acquire()
    rate = n / (time.perf_counter() - t0)
    server.shutdown()
    return rate


def round_trip(url: str, samples: int = 300) -> tuple[float, float]:
    """Enqueue → handler start on an idle server, one task at a time: (p50, p99) in ms."""
    started = threading.Event()
    srv = Server(url, concurrency=8)  # asynq's default 1 s poll: only the wake-up is fast
    srv.start(lambda task: started.set())
    lat: list[float] = []
    try:
        with Client(url) as c:
            c.enqueue(Task("warm"))
            started.wait(5)
            for _ in range(samples):
                started.clear()
                time.sleep(0.002)  # idle again
                t0 = time.perf_counter()
                c.enqueue(Task("ping"))
                if not started.wait(5):
                    raise RuntimeError("task never ran")
                lat.append((time.perf_counter() - t0) * 1000)
    finally:
        srv.shutdown()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


def idle_cpu(url: str, seconds: float = 5.0) -> float:
    """CPU used by this process (all threads) while a started server waits: % of one core."""
    srv = Server(url, concurrency=64)
    srv.start(lambda task: None)
    try:
        time.sleep(1.0)
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return 100 * (time.process_time() - c0) / (time.perf_counter() - t0)
    finally:
        srv.shutdown()


def flush(url: str) -> None:
    with contextlib.closing(redis.Redis.from_url(url)) as r:
        r.flushall()


def median_of_3(url: str, fn: Callable[[str, int], float], n: int) -> float:
    rates = []
    for _ in range(3):
        flush(url)
        rates.append(fn(url, n))
    return statistics.median(rates)


RATES: dict[str, Callable[[str, int], float]] = {
    "enqueue": enqueue_one_by_one,
    "enqueue_many": enqueue_many,
    "sync": lambda u, n: process(u, n, asynchronous=False),
    "async": lambda u, n: process(u, n, asynchronous=True),
}
SCENARIOS = [*RATES, "round_trip", "idle_cpu"]


def measure_once(url: str, scenario: str, n: int) -> dict[str, object]:
    """One run of ``scenario`` on a flushed db, as the JSON object ``--json`` prints."""
    flush(url)
    if scenario in RATES:
        return {"scenario": scenario, "value": RATES[scenario](url, n), "unit": "tasks/s"}
    if scenario == "round_trip":
        p50, p99 = round_trip(url)
        return {"scenario": scenario, "p50": p50, "p99": p99, "unit": "ms"}
    return {"scenario": scenario, "value": idle_cpu(url), "unit": "% of a core"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--only", choices=SCENARIOS, help="measure this scenario once")
    p.add_argument("--json", action="store_true", help="with --only: print one JSON object")
    args = p.parse_args()
    if args.json and not args.only:
        p.error("--json needs --only")
    if args.only:
        with local_redis() as url:
            result = measure_once(url, args.only, args.tasks)
        if args.json:
            print(json.dumps(result), flush=True)
        elif "p50" in result:
            print(f"{args.only}: p50 {result['p50']:.3f} ms · p99 {result['p99']:.3f} ms")
        else:
            print(f"{args.only}: {result['value']:,.2f} {result['unit']}")
        return
    with local_redis() as url:
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
        print(f"machine: {machine}, Python {platform.python_version()}")
        print(f"tasks per run: {args.tasks}, median of 3")
        scenarios: list[tuple[str, Callable[[str, int], float]]] = [
            ("enqueue, one call per task", enqueue_one_by_one),
            ("enqueue_many (1000 per call)", enqueue_many),
            ("process, no-op sync handler", lambda u, n: process(u, n, asynchronous=False)),
            ("process, no-op async handler", lambda u, n: process(u, n, asynchronous=True)),
        ]
        for name, fn in scenarios:
            print(f"{name:32s} {median_of_3(url, fn, args.tasks):>10,.0f} tasks/s")
        flush(url)
        p50, p99 = round_trip(url)
        print(f"{'round trip, idle server':32s} p50 {p50:.3f} ms · p99 {p99:.3f} ms")
        print(f"{'idle server CPU':32s} {idle_cpu(url):>10.2f} % of a core")


if __name__ == "__main__":
    main()
