"""A failover under load, measured: a producer enqueues to one queue and a server processes it
while the caller kills the master; then what was acknowledged and lost, what ran twice (an
outcome or a lease lost), and how long processing paused. Used by the cluster and Sentinel
tests; the figures in docs/reliability.md come from their output.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import redis

from ferroq import Client, FerroqError, ServeMux, Server, Task
from topology import wait_until
from util import FAST

QUEUE = "fo"


@dataclass
class Report:
    """What one run through a failover saw."""

    mode: str
    acked: int
    refused: int
    lost: list[str]
    ran_twice: list[str]
    failover: float
    pause: float

    def __str__(self) -> str:
        return (
            f"[{self.mode}] acked {self.acked}, refused {self.refused}, lost {len(self.lost)}, "
            f"ran twice {len(self.ran_twice)}, failover {self.failover:.2f}s, "
            f"processing paused {self.pause:.2f}s"
        )

    def check(self, durable: bool) -> None:
        """Prints the figures; in durable mode nothing acknowledged may be lost or rerun."""
        print(f"\n{self}")
        if durable:
            assert not self.lost, f"durable mode lost acknowledged enqueues: {self.lost[:10]}"
            assert not self.ran_twice, f"durable mode lost outcomes: {self.ran_twice[:10]}"


class _Run:
    def __init__(self, url: str, durable: bool) -> None:
        n = 1 if durable else 0
        self.client = Client(url, wait_for_replicas=n, replica_timeout=0.5)
        self.acked: list[str] = []
        self.refused = 0
        self.runs: Counter[str] = Counter()
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        mux = ServeMux()
        mux.handle("w", self.handle)
        # A lease long enough to outlast the failover: renewals fail while it lasts.
        settings: dict[str, Any] = {
            **FAST, "lease_duration": 10, "heartbeat_interval": 0.5, "lease_grace": 1,
            "recoverer_interval": 0.5, "syncer_interval": 0.2,
        }  # fmt: skip
        self.server = Server(
            url, queues={QUEUE: 1}, concurrency=4, wait_for_replicas=n, replica_timeout=0.5,
            **settings,
        )  # fmt: skip
        self.server.start(mux)
        self.producer = threading.Thread(target=self.produce, daemon=True)
        self.producer.start()

    def handle(self, task: Task) -> None:
        key = task.payload.decode()
        with self.lock:
            self.runs[key] += 1
            self.first.setdefault(key, time.monotonic())

    def produce(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"t{i}"
            i += 1
            try:
                self.client.enqueue(Task("w", key.encode()), queue=QUEUE, task_id=key)
            except FerroqError:
                # Not acknowledged (unreachable, unconfirmed, or an ID conflict after an unseen
                # success): the producer knows it may be lost, a real one retries.
                self.refused += 1
                time.sleep(0.01)
                continue
            with self.lock:
                self.acked.append(key)
            time.sleep(0.002)


def run_through_failover(
    url: str,
    durable: bool,
    fail_over: Callable[[], float],
    observer: Callable[[], Any],
) -> Report:
    """Runs the load, calls ``fail_over`` (which kills the master and returns when a replica
    took over, as a monotonic instant) mid-run, lets work resume, drains, and reports."""
    run = _Run(url, durable)
    try:
        wait_until(lambda: len(run.first) >= 200, 30, "the run to get going")
        killed_at = time.monotonic()
        promoted_at = fail_over()
        wait_until(lambda: any(t > promoted_at for t in run.first.values()), 30, "work to resume")
        time.sleep(1.0)
        run.stop.set()
        run.producer.join(10)
        acked = set(run.acked)

        def drained() -> bool:
            if acked <= set(run.first):
                return True
            with observer() as r:
                pending = r.llen(f"asynq:{{{QUEUE}}}:pending")
                leased = r.zcard(f"asynq:{{{QUEUE}}}:lease")
            return bool(pending == 0 and leased == 0)

        wait_until(drained, 60, "the queue to drain")
        time.sleep(0.5)
    finally:
        run.stop.set()
        run.server.shutdown()
        run.client.close()
    with observer() as r:
        present = {k for k in acked - set(run.first) if r.exists(f"asynq:{{{QUEUE}}}:t:{k}")}
    # The longest stretch without a task starting, from the kill on (tasks already handed to
    # workers before it run on, so the stretch is not simply the time to the next start).
    starts = sorted([killed_at, *(t for t in run.first.values() if t > killed_at)])
    return Report(
        mode="durable" if durable else "default",
        acked=len(acked),
        refused=run.refused,
        lost=sorted(acked - set(run.first) - present),
        ran_twice=sorted(k for k, n in run.runs.items() if n > 1),
        failover=promoted_at - killed_at,
        pause=max(b - a for a, b in pairwise(starts)),
    )


def redis_observer(port_of_master: Callable[[], int]) -> Callable[[], redis.Redis]:
    """A redis-py client factory for whichever server is the master now."""
    return lambda: redis.Redis(port=port_of_master(), socket_timeout=5)
