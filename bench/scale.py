"""Scale run: does dequeue cost grow with the backlog or with the number of queues, and does a
worker's memory grow while it processes a million tasks?

Run: ``python bench/scale.py [--tasks 1000000]`` (``make bench-scale``). Starts a private Redis
unless ``REDIS_URL`` is set. Prints, for a backlog of ``--tasks`` no-op tasks in one queue, the
processing rate over the first and the last tenth; for 100 queues against one, the rate over the
same number of tasks; and the worker's resident memory after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time

import redis

from ferroq import Client, Server, Task
from throughput import local_redis


def rss_mb() -> float:
    """Resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def fill(url: str, n: int, queues: list[str]) -> None:
    with Client(url) as c:
        per = n // len(queues)
        for q in queues:
            for i in range(0, per, 5000):
                c.enqueue_many([Task("noop") for _ in range(min(5000, per - i))], queue=q)


def drain(url: str, n: int, queues: list[str], marks: list[int]) -> dict[int, tuple[float, float]]:
    """Processes n tasks; at each mark (tasks done) records (seconds since start, RSS MiB)."""
    done = 0
    lock = threading.Lock()
    seen: dict[int, tuple[float, float]] = {}
    all_done = threading.Event()
    pending_marks = sorted(marks)

    def handler(task: Task) -> None:
        nonlocal done
        with lock:
            done += 1
            while pending_marks and done >= pending_marks[0]:
                seen[pending_marks.pop(0)] = (time.perf_counter() - t0, rss_mb())
            if done >= n:
                all_done.set()

    srv = Server(url, concurrency=64, queues={q: 1 for q in queues}, task_check_interval=0.05)
    t0 = time.perf_counter()
    srv.start(handler)
    all_done.wait()
    srv.shutdown()
    return seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=1_000_000)
    args = p.parse_args()
    n = args.tasks
    with local_redis() as url, contextlib.closing(redis.Redis.from_url(url)) as r:
        r.flushall()
        fill(url, n, ["bulk"])
        tenth = n // 10
        marks = drain(url, n, ["bulk"], [tenth, 2 * tenth, n - tenth, n])
        first = tenth / (marks[2 * tenth][0] - marks[tenth][0])
        last = tenth / (marks[n][0] - marks[n - tenth][0])
        print(f"backlog of {n:,} in one queue: {first:,.0f} tasks/s while the backlog was "
              f"{n - tenth:,}+ deep, {last:,.0f} tasks/s over the last {tenth:,}")  # fmt: skip
        warm, end = marks[tenth][1], marks[n][1]
        print(f"worker RSS: {warm:.1f} MiB after {tenth:,} tasks, {end:.1f} MiB after {n:,} "
              f"(+{end - warm:.1f} MiB)")  # fmt: skip
        m = min(n, 100_000)
        for queues in (["only"], [f"q{i:03}" for i in range(100)]):
            r.flushall()
            fill(url, m, queues)
            got = drain(url, m, queues, [m // 10, m])
            rate = (m - m // 10) / (got[m][0] - got[m // 10][0])
            print(f"{m:,} tasks over {len(queues):>3} queue(s): {rate:,.0f} tasks/s")


if __name__ == "__main__":
    main()
