"""Regenerates the CLI transcripts of ``docs/operations.md`` from a real run.

Run: ``python tools/capture_operations.py`` (``make operations-doc`` prints the same). Starts an
embedded Redis, a ferroq server and a scheduler on a realistic set of queues (emails that
sometimes fail, reports, image resizes, a paused queue, grouped tasks), lets them work for a few
seconds, then runs the ``ferroq`` commands the document shows and prints each with its output,
as Markdown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ferroq import Client, Inspector, Scheduler, ServeMux, Server, SkipRetry, Task
from ferroq._embedded import EmbeddedRedis

mux = ServeMux()


@mux.handle("email:send")
def send(task: Task) -> None:
    """Sends an email; addresses marked ``bounce`` fail (and are retried)."""
    if task.payload.endswith(b"bounce"):
        raise ConnectionError("smtp.example.com:587: connection refused")


@mux.handle("image:resize")
def resize(task: Task) -> None:
    """Resizes an image; a corrupt one is archived at once."""
    if task.payload == b"corrupt.png":
        raise SkipRetry("cannot identify image file 'corrupt.png'")


@mux.handle("report:daily")
def report(task: Task) -> None:
    """Builds a report and stores where it is as the task's result."""
    task.write_result(b'{"rows": 1284, "file": "s3://reports/daily.csv"}')


def run(url: str, *args: str) -> str:
    """Runs ``ferroq ARGS`` against ``url``; returns what it printed."""
    env = {**os.environ, "REDIS_URL": url, "COLUMNS": "150"}
    p = subprocess.run(
        [sys.executable, "-m", "ferroq", *args], capture_output=True, text=True, env=env
    )
    return (p.stdout + p.stderr).rstrip()


def main() -> None:
    """Sets the deployment up, lets it work, prints the transcripts."""
    with EmbeddedRedis() as redis_server:
        url = redis_server.url
        with Client(url) as c:
            for i in range(40):
                to = f"user{i}@example.com" + (" bounce" if i % 13 == 0 else "")
                c.enqueue(Task("email:send", to.encode()), queue="critical", max_retry=3)
            for name in ["a.png", "b.png", "corrupt.png", "c.png"]:
                c.enqueue(Task("image:resize", name.encode()), queue="default")
            c.enqueue(Task("report:daily", b"2026-12-01"), queue="low", retention=86400)
            c.enqueue(Task("report:daily", b"2026-12-02"), queue="low", process_in=86400)
            for i in range(3):
                c.enqueue(Task("digest:add", f"item {i}".encode()), queue="low", group="weekly")
        srv = Server(
            url, queues={"critical": 6, "default": 3, "low": 1}, concurrency=8,
            task_check_interval=0.1, retry_delay=lambda n, e, t: 600,
        )  # fmt: skip
        srv.start(mux)
        sched = Scheduler(url, heartbeat_interval=1)
        entry = sched.register(
            "@every 2s", Task("report:daily", b"tick"), queue="low", retention=3600
        )
        sched.start()
        time.sleep(6)
        with Client(url) as c:
            for i in range(25):
                c.enqueue(Task("email:send", f"late{i}@example.com".encode()), queue="marketing")
        with Inspector(url) as insp:
            insp.pause_queue("marketing")
            archived = insp.list_archived_tasks("default")
            retry = insp.list_retry_tasks("critical")
        commands: list[list[str]] = [
            ["stats"],
            ["queue", "ls"],
            ["queue", "inspect", "critical"],
            ["queue", "history", "critical", "-x", "3"],
            ["task", "ls", "-q", "critical", "-s", "retry"],
            ["task", "ls", "-q", "default", "-s", "archived"],
            ["task", "inspect", "-q", "default", "-i", archived[0].id],
            ["task", "inspect", "-q", "critical", "-i", retry[0].id],
            ["group", "ls", "-q", "low"],
            ["server", "ls"],
            ["cron", "ls"],
            ["cron", "history", entry, "--size", "3"],
            ["task", "run", "-q", "default", "-i", archived[0].id],
            ["task", "runall", "-q", "critical", "-s", "retry"],
            ["task", "deleteall", "-q", "default", "-s", "archived"],
            ["queue", "resume", "marketing"],
            ["queue", "rm", "marketing"],
            ["task", "inspect", "-q", "default", "-i", "no-such-task"],
        ]
        for cmd in commands:
            print(f"```console\n$ ferroq {' '.join(cmd)}\n{run(url, *cmd)}\n```\n")
        # The metrics a scrape of `ferroq metrics --memory` and `ferroq worker --metrics-port`
        # returns, for the same deployment.
        from prometheus_client import CollectorRegistry, generate_latest

        from ferroq.metrics import QueueMetricsCollector, WorkerMetricsCollector

        reg = CollectorRegistry()
        with Inspector(url) as insp:
            reg.register(QueueMetricsCollector(insp, memory=True))
            reg.register(WorkerMetricsCollector(srv))
            text = generate_latest(reg).decode()
        print("```text")
        for line in text.splitlines():
            # The histogram's 16 buckets per series are cut to a few for the document.
            kept = ('le="0.001"', 'le="0.01"', 'le="+Inf"')
            if "_bucket{" in line and not any(b in line for b in kept):
                continue
            print(line)
        print("```")
        sched.shutdown()
        srv.shutdown()


if __name__ == "__main__":
    main()
