"""The Celery original: a report pipeline with retries and backoff, progress, beat and results.

Kept for comparison with celery_ferroq.py (not run: ferroq does not depend on Celery).
"""

import os
import random
import time
from datetime import datetime, timedelta, timezone

from celery import Celery
from celery.result import AsyncResult
from celery.schedules import crontab

REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("reports", broker=REDIS, backend=REDIS)
app.conf.result_expires = 3600
app.conf.task_default_queue = "default"
app.conf.beat_schedule = {
    "nightly-cleanup": {"task": "reports.cleanup", "schedule": crontab(minute=0, hour=3)},
}


class UpstreamDown(Exception):
    """The upstream API failed: worth retrying."""


@app.task(autoretry_for=(UpstreamDown,), retry_backoff=1, retry_backoff_max=30, max_retries=5)
def fetch_rows(source: str, flaky: float = 0.0) -> list[dict]:
    if random.random() < flaky:
        raise UpstreamDown(source)
    return [{"source": source, "n": i} for i in range(10)]


@app.task(bind=True)
def build_report(self, source: str, rows: list[dict]) -> dict:
    total = 0
    for i, row in enumerate(rows, 1):
        total += row["n"]
        self.update_state(state="PROGRESS", meta={"done": i, "total": len(rows)})
        time.sleep(0.01)
    return {"source": source, "rows": len(rows), "total": total}


@app.task
def notify(email: str, report: dict) -> str:
    return f"sent {report['total']} to {email}"


@app.task(name="reports.cleanup")
def cleanup() -> int:
    return 0


@app.task(max_retries=0)
def broken(source: str) -> None:
    raise ValueError(f"no parser for {source}")


def run(source: str, email: str) -> dict:
    rows = fetch_rows.delay(source, flaky=0.3).get(timeout=60)
    job = build_report.apply_async((source, rows), queue="reports", countdown=1)
    seen = []
    while not job.ready():
        if job.state == "PROGRESS":
            seen.append(job.info["done"])
        time.sleep(0.02)
    report = job.get(timeout=30)
    eta = datetime.now(timezone.utc) + timedelta(seconds=1)
    sent = notify.apply_async((email, report), eta=eta).get(timeout=30)
    again = AsyncResult(job.id, app=app)
    try:
        broken.delay(source).get(timeout=30)
        failure = None
    except ValueError as e:
        failure = str(e)
    return {"report": again.get(), "sent": sent, "progress": seen, "failure": failure}


if __name__ == "__main__":
    print(run("sales", "ada@example.com"))
