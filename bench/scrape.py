"""What a Prometheus scrape of the queue metrics costs with many queues.

Run: ``python bench/scrape.py [--queues 100] [--rounds 30]`` (``make bench-scrape``). Starts a
private Redis unless ``REDIS_URL`` is set, fills ``--queues`` queues with tasks in every state,
then times, side by side in one run:

- one scrape of ``QueueMetricsCollector`` (every queue read in one batch), without and with the
  sampled memory estimate, and the reads of the first alone (the rest is prometheus-client
  building and formatting the samples);
- the same numbers read the way asynq's collector reads them: one ``GetQueueInfo`` call (memory
  sampled) per queue, one after the other, here with ferroq's own ``get_queue_info``;

and reports the median time per scrape, the Redis commands each sends (from ``INFO
commandstats``) and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry, generate_latest

from ferroq import Client, Inspector, Task
from ferroq.metrics import QueueMetricsCollector
from throughput import local_redis


def fill(url: str, queues: int) -> None:
    """Each queue: 50 pending, 10 scheduled, 10 archived, 10 completed, a group of 5."""
    r = redis.Redis.from_url(url)
    now = int(time.time())
    with Client(url) as c:
        for i in range(queues):
            q = f"q{i:03d}"
            c.enqueue_many([Task("noop", b"x" * 64) for _ in range(50)], queue=q)
            c.enqueue_many([Task("later") for _ in range(10)], queue=q, process_in=3600)
            c.enqueue_many([Task("agg") for _ in range(5)], queue=q, group="g")
            done = c.enqueue_many([Task("done") for _ in range(20)], queue=q, process_in=7200)
            # Half archived, half completed: moved by hand, as the server would have.
            for j, info in enumerate(done):
                key = f"asynq:{{{q}}}:t:{info.id}"
                r.zrem(f"asynq:{{{q}}}:scheduled", info.id)
                target = "archived" if j % 2 else "completed"
                r.zadd(f"asynq:{{{q}}}:{target}", {info.id: now})
                r.hset(key, "state", target)
    r.close()


def commands(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def measure(r: redis.Redis, fn: Callable[[], object], rounds: int) -> tuple[float, int]:
    """Median milliseconds per call, and Redis commands per call."""
    fn()
    times = []
    before = commands(r)
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    # INFO itself is one command per read: two reads around the loop.
    per_call = (commands(r) - before - 1) // rounds
    return statistics.median(times), per_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    with local_redis() as url:
        r = redis.Redis.from_url(url)
        r.flushall()
        fill(url, args.queues)
        insp = Inspector(url)
        names = insp.queues()

        def registry(memory: bool) -> CollectorRegistry:
            reg = CollectorRegistry()
            reg.register(QueueMetricsCollector(insp, memory=memory))
            return reg

        fast, sampled = registry(False), registry(True)
        rows = [
            ("ferroq scrape, no memory", lambda: generate_latest(fast)),
            ("  of which the reads (get_queue_infos, no memory)", lambda: insp.get_queue_infos()),
            ("ferroq scrape, memory sampled", lambda: generate_latest(sampled)),
            (
                "one get_queue_info per queue, memory sampled (asynq's collector's way)",
                lambda: [insp.get_queue_info(q) for q in names],
            ),
        ]
        results = [(name, *measure(r, fn, args.rounds)) for name, fn in rows]
        base = results[0][1]
        print(f"{args.queues} queues, {args.rounds} rounds, median per scrape:")
        print(f"{'read':<72} {'ms':>8} {'commands':>9} {'x no-memory':>12}")
        for name, ms, n in results:
            print(f"{name:<72} {ms:8.2f} {n:9d} {ms / base:12.1f}")
        insp.close()
        r.close()


if __name__ == "__main__":
    main()
