"""The Celery app of celery_original.py on ferroq: the same tasks, calls and results.

Worker: ``ferroq worker celery_ferroq:app``; beat: ``ferroq scheduler celery_ferroq:beat``.
"""

import os
import random
import time
from datetime import datetime, timedelta, timezone

from ferroq import App, RetryPolicy, Scheduler, current_task

REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app = App(REDIS, result_ttl=3600, default_queue="default", queues={"default": 1, "reports": 1})
beat = Scheduler(REDIS)


class UpstreamDown(Exception):
    """The upstream API failed: worth retrying."""


@app.task(autoretry_for=[UpstreamDown], retry=RetryPolicy(delay=1, max_delay=30), max_retry=5)
def fetch_rows(source: str, flaky: float = 0.0) -> list[dict]:
    if random.random() < flaky:
        raise UpstreamDown(source)
    return [{"source": source, "n": i} for i in range(10)]


@app.task
def build_report(source: str, rows: list[dict]) -> dict:
    total = 0
    for i, row in enumerate(rows, 1):
        total += row["n"]
        current_task().report_progress({"done": i, "total": len(rows)})
        time.sleep(0.01)
    return {"source": source, "rows": len(rows), "total": total}


@app.task
def notify(email: str, report: dict) -> str:
    return f"sent {report['total']} to {email}"


@app.task(name="reports.cleanup")
def cleanup() -> int:
    return 0


@app.task(max_retry=0)
def broken(source: str) -> None:
    raise ValueError(f"no parser for {source}")


beat.register("0 3 * * *", cleanup)


def run(source: str, email: str) -> dict:
    rows = fetch_rows.delay(source, flaky=0.3).get(timeout=60)
    job = build_report.apply_async((source, rows), queue="reports", countdown=1)
    seen = []
    while not job.ready():
        if job.progress:
            seen.append(job.progress["done"])
        time.sleep(0.02)
    report = job.get(timeout=30)
    eta = datetime.now(timezone.utc) + timedelta(seconds=1)
    sent = notify.apply_async((email, report), eta=eta).get(timeout=30)
    again = build_report.handle(job.id, queue="reports")
    try:
        broken.delay(source).get(timeout=30)
        failure = None
    except ValueError as e:
        failure = str(e)
    return {"report": again.get(), "sent": sent, "progress": seen, "failure": failure}


if __name__ == "__main__":
    print(run("sales", "ada@example.com"))
