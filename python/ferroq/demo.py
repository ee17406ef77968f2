"""``ferroq demo``: a scheduler, a client and a server cooperating through Redis.

Three separate parties, as in production: a scheduler process (``ferroq scheduler
ferroq.demo:scheduler``) enqueues ``demo:report`` every two seconds, a server process (``ferroq
worker ferroq.demo:mux``) runs every task, and this process enqueues a burst of sync and async
tasks as a client, then follows them all with a live progress line read by an ``Inspector``,
and reads back the result the last periodic report stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time

from ferroq._embedded import EmbeddedRedis
from ferroq.client import Client
from ferroq.inspector import Inspector, QueueInfo
from ferroq.scheduler import Scheduler
from ferroq.servemux import ServeMux
from ferroq.task import Task

__all__ = ["mux", "run_demo", "scheduler"]

mux = ServeMux()

#: The demo's periodic entry (Redis from $REDIS_URL, which the demo sets for its processes).
scheduler = Scheduler(heartbeat_interval=2)
scheduler.register("@every 2s", Task("demo:report"), queue="critical", retention=60)


@mux.handle("demo:resize")
def resize(task: Task) -> None:
    """A sync handler doing a little CPU work (runs on the worker thread pool)."""
    hashlib.sha256(task.payload * 64).hexdigest()


@mux.handle("demo:notify")
async def notify(task: Task) -> None:
    """An async handler waiting on I/O (runs on the asyncio loop)."""
    await asyncio.sleep(0.001)


@mux.handle("demo:report")
def report(task: Task) -> None:
    """The periodic task."""
    task.write_result(f"report at {time.time():.3f}".encode())


def _counts(insp: Inspector) -> dict[str, QueueInfo]:
    return {c.queue: c for c in insp.get_queue_infos()}


def _processed(counts: dict[str, QueueInfo], queue: str) -> int:
    c = counts.get(queue)
    return c.processed_total if c else 0


def run_demo(tasks: int = 2000, redis_url: str | None = None) -> int:
    """Runs the demo; returns the process exit code."""
    url = redis_url or os.environ.get("REDIS_URL")
    embedded = None
    if not url:
        embedded = EmbeddedRedis().start()
        url = embedded.url
        print(f"embedded {embedded.name} on {url}")
    insp = Inspector(url)
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "REDIS_URL": url}
    try:
        first = _counts(insp)
        base = {q: _processed(first, q) for q in ("critical", "default")}
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "ferroq", "--log-level", "WARNING", "worker",
                "ferroq.demo:mux", "--concurrency", "32",
                "--queue", "critical=6", "--queue", "default=3", "--task-check-interval", "0.1",
            ],
            env=env,
        )  # fmt: skip
        procs.append(worker)
        print(f"server process {worker.pid} serving critical=6, default=3")
        sched = subprocess.Popen(
            [sys.executable, "-m", "ferroq", "--log-level", "WARNING", "scheduler",
             "ferroq.demo:scheduler"],
            env=env,
        )  # fmt: skip
        procs.append(sched)
        print(f"scheduler process {sched.pid}: demo:report @every 2s into critical")
        started = time.monotonic()
        with Client(url) as client:
            burst = [
                Task("demo:resize" if i % 2 else "demo:notify", str(i).encode())
                for i in range(tasks)
            ]
            client.enqueue_many(burst)
        print(f"client enqueued {tasks} tasks ({tasks // 2} sync, {tasks - tasks // 2} async)")
        burst_secs: float | None = None
        while True:
            time.sleep(0.2)
            counts = _counts(insp)
            done = _processed(counts, "default") - base["default"]
            reports = _processed(counts, "critical") - base["critical"]
            default = counts.get("default")
            elapsed = time.monotonic() - started
            if done >= tasks and burst_secs is None:
                burst_secs = elapsed
            sys.stdout.write(
                f"\r[{elapsed:5.1f}s] burst {done}/{tasks} processed · "
                f"periodic reports {reports} processed · pending "
                f"{default.pending if default else 0} · active {default.active if default else 0}  "
            )
            sys.stdout.flush()
            if done >= tasks and reports >= 3:
                break
            for p in procs:
                if p.poll() is not None:
                    print(f"\nprocess {p.pid} exited with {p.returncode}")
                    return 1
            if elapsed > 120:
                print("\ndemo timed out")
                return 1
        took = burst_secs or elapsed
        print(
            f"\ndone: {tasks} tasks in {took:.2f}s ({tasks / took:,.0f} tasks/s end to end); "
            "the scheduler's periodic reports were served alongside"
        )
        reports_kept = insp.list_completed_tasks("critical", page_size=1000)
        if reports_kept:
            # Listed by expiry (completion + the same retention): the last completed last.
            last = reports_kept[-1]
            result = (last.result or b"").decode(errors="replace")
            print(f"last periodic report {last.id}: result {result!r} (read by the Inspector)")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        insp.close()
        if embedded is not None:
            embedded.stop()
