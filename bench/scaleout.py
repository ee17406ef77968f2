"""What scale-out costs: durable mode against the default, a Redis Cluster against one Redis, and
declared-keys mode (the default on a cluster, ``declare_keys=True`` elsewhere, for proxies) against
the asynq-style dequeue.

Run: ``python bench/scaleout.py [--tasks 20000] [--runs 3] [--only SETUP ...]``
(``make bench-scaleout``).

Every setup runs on loopback, started here (``tests/topology.py``): one ``redis-server``; a master
with one replica (for ``wait_for_replicas=1``); a 3-master / 3-replica cluster. For each, in
one run and interleaved (run 1 of every setup, then run 2...):

- *enqueue*: ``--tasks`` no-op tasks, one ``Client.enqueue`` call each, one thread;
- *process*: one ``Server`` (concurrency 64, sync no-op handler) on that backlog, from its start
  until asynq's processed counter reaches ``--tasks`` (polled every 2 ms).

Durable rows use ``wait_for_replicas=1`` for the client and the server. The server's
``declare_keys`` is its default (on for the cluster, off otherwise) but in the rows that name it:
``declare_keys=True`` on one Redis, ``declare_keys=False`` on the cluster (the client is the
same). Tasks go
to 12 queues (spread over the cluster's slots; the server serves all of them with equal
weights). The table gives medians, the range, and each setup's ratio to plain Redis, which
always runs (``--only`` names the other setups to run, by their row names).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from ferroq import Client, ServeMux, Server, Task  # noqa: E402
from ferroq._embedded import EmbeddedRedis  # noqa: E402
from topology import Cluster  # noqa: E402  (the test harness's real topologies)

QUEUES = [f"q{i}" for i in range(12)]


def processed(count: Callable[[], int], n: int) -> None:
    while count() < n:
        time.sleep(0.002)


def one_run(
    url: str, durable: bool, declared: bool | None, n: int, count: Callable[[], int]
) -> tuple[float, float]:
    """(enqueue rate, process rate) of one run on an emptied Redis."""
    replicas = 1 if durable else 0
    with Client(url, wait_for_replicas=replicas) as c:
        c.ping()
        t0 = time.perf_counter()
        for i in range(n):
            c.enqueue(Task("noop"), queue=QUEUES[i % len(QUEUES)])
        enq = n / (time.perf_counter() - t0)
    mux = ServeMux()
    mux.handle("noop", lambda task: None)
    server = Server(
        url,
        queues=dict.fromkeys(QUEUES, 1),
        concurrency=64,
        wait_for_replicas=replicas,
        declare_keys=declared,
    )
    t0 = time.perf_counter()
    server.start(mux)
    processed(count, n)
    proc = n / (time.perf_counter() - t0)
    server.shutdown()
    return enq, proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--only",
        action="append",
        metavar="SETUP",
        help="run only this setup (a row name, e.g. 'cluster 3+3, declare_keys=False'), besides "
        "the baseline",
    )
    args = p.parse_args()
    single = EmbeddedRedis().start()
    master = EmbeddedRedis().start()
    replica = EmbeddedRedis(args=["--replicaof", "127.0.0.1", str(master.port)]).start()
    cluster = Cluster().start()
    try:
        time.sleep(1)  # the replica's first sync
        plain = redis.Redis(port=single.port)
        prim = redis.Redis(port=master.port)

        def counter(r: redis.Redis) -> Callable[[], int]:
            keys = [f"asynq:{{{q}}}:processed" for q in QUEUES]
            return lambda: sum(int(v or 0) for v in r.mget(keys))

        def cluster_count() -> int:
            with cluster.client() as rc:
                return sum(int(rc.get(f"asynq:{{{q}}}:processed") or 0) for q in QUEUES)

        # name, url, durable, the server's declare_keys (None: its default), count, flush
        Setup = tuple[str, str, bool, bool | None, Callable[[], int], Callable[[], object]]
        setups: list[Setup] = [
            ("one Redis", single.url, False, None, counter(plain), plain.flushall),
            ("one Redis, declare_keys", single.url, False, True, counter(plain), plain.flushall),
            ("master + replica, default", master.url, False, None, counter(prim), prim.flushall),
            (
                "master + replica, wait_for_replicas=1",
                master.url,
                True,
                None,
                counter(prim),
                prim.flushall,
            ),
            (
                "cluster 3+3, declare_keys=False",
                cluster.url,
                False,
                False,
                cluster_count,
                cluster.flushall,
            ),
            (
                "cluster 3+3 (declared keys)",
                cluster.url,
                False,
                None,
                cluster_count,
                cluster.flushall,
            ),
            (
                "cluster 3+3, wait_for_replicas=1",
                cluster.url,
                True,
                None,
                cluster_count,
                cluster.flushall,
            ),
        ]
        if args.only:
            unknown = set(args.only) - {s[0] for s in setups}
            if unknown:
                p.error(f"no such setup: {', '.join(sorted(unknown))}")
            setups = [s for s in setups if s[0] == "one Redis" or s[0] in args.only]
        results: dict[str, list[tuple[float, float]]] = {s[0]: [] for s in setups}
        for run in range(args.runs):
            for name, url, durable, declared, count, flush in setups:
                flush()
                time.sleep(0.2)
                enq, proc = one_run(url, durable, declared, args.tasks, count)
                results[name].append((enq, proc))
                print(f"run {run + 1} {name:40s} enqueue {enq:>8,.0f}/s process {proc:>8,.0f}/s",
                      file=sys.stderr)  # fmt: skip
    finally:
        cluster.stop()
        replica.stop()
        master.stop()
        single.stop()
    base_e = statistics.median(e for e, _ in results["one Redis"])
    base_p = statistics.median(p for _, p in results["one Redis"])
    print(f"machine: {platform.machine()}, {platform.node()}; {args.tasks} tasks, {args.runs} runs")
    print()
    print("| setup | enqueue/s (median, range) | ratio | process/s (median, range) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, rs in results.items():
        es, ps = [e for e, _ in rs], [p for _, p in rs]
        me, mp = statistics.median(es), statistics.median(ps)
        print(
            f"| {name} | {me:,.0f} ({min(es):,.0f}-{max(es):,.0f}) | {me / base_e:.2f}x "
            f"| {mp:,.0f} ({min(ps):,.0f}-{max(ps):,.0f}) | {mp / base_p:.2f}x |"
        )


if __name__ == "__main__":
    main()
