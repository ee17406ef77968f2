"""``ferroq demo``: producers and a separate server process cooperating through Redis.

A periodic producer and a client burst feed a server process; a live progress line follows them.

The periodic producer is a timer inside the demo process until ferroq's Scheduler lands (it
enqueues ``demo:report`` every two seconds, as a ``@every 2s`` entry would).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import redis

from ferroq._embedded import EmbeddedRedis
from ferroq.client import Client
from ferroq.servemux import ServeMux
from ferroq.task import Task

__all__ = ["mux", "run_demo"]

mux = ServeMux()


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


def _counter(r: redis.Redis, queue: str) -> int:
    v = r.get(f"asynq:{{{queue}}}:processed")
    return int(v) if v else 0


def run_demo(tasks: int = 2000, redis_url: str | None = None) -> int:
    """Runs the demo; returns the process exit code."""
    url = redis_url or os.environ.get("REDIS_URL")
    embedded = None
    if not url:
        embedded = EmbeddedRedis().start()
        url = embedded.url
        print(f"embedded {embedded.name} on {url}")
    r = redis.Redis.from_url(url)
    worker = None
    stop = threading.Event()
    try:
        base = {q: _counter(r, q) for q in ("critical", "default")}
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "ferroq", "--log-level", "WARNING", "worker",
                "ferroq.demo:mux", "--redis", url, "--concurrency", "32",
                "--queue", "critical=6", "--queue", "default=3", "--task-check-interval", "0.1",
            ],
        )  # fmt: skip
        print(f"server process {worker.pid} serving critical=6, default=3")
        fired = 0

        def periodic() -> None:
            nonlocal fired
            with Client(url) as c:
                while not stop.is_set():
                    c.enqueue(Task("demo:report"), queue="critical", retention=60)
                    fired += 1
                    stop.wait(2.0)

        threading.Thread(target=periodic, name="demo-periodic", daemon=True).start()
        started = time.monotonic()
        with Client(url) as client:
            burst = [
                Task("demo:resize" if i % 2 else "demo:notify", str(i).encode())
                for i in range(tasks)
            ]
            client.enqueue_many(burst)
        print(f"client enqueued {tasks} tasks ({tasks // 2} sync, {tasks - tasks // 2} async)")
        while True:
            time.sleep(0.2)
            done = _counter(r, "default") - base["default"]
            reports = _counter(r, "critical") - base["critical"]
            elapsed = time.monotonic() - started
            sys.stdout.write(
                f"\r[{elapsed:5.1f}s] burst {done}/{tasks} processed · "
                f"periodic {reports}/{fired} processed · pending "
                f"{r.llen('asynq:{default}:pending')} · active {r.llen('asynq:{default}:active')}  "
            )
            sys.stdout.flush()
            if done >= tasks and reports >= 3:
                break
            if worker.poll() is not None:
                print(f"\nserver process exited with {worker.returncode}")
                return 1
            if elapsed > 120:
                print("\ndemo timed out")
                return 1
        print(
            f"\ndone: {tasks} tasks in {elapsed:.2f}s ({tasks / elapsed:,.0f} tasks/s end to end)"
        )
        return 0
    finally:
        stop.set()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
        r.close()
        if embedded is not None:
            embedded.stop()
