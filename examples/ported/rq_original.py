"""The RQ original: jobs enqueued now, later and at a time, results, a failed job requeued.

Kept for comparison with rq_ferroq.py (not run: ferroq does not depend on RQ).
"""

import os
import time
from datetime import datetime, timedelta, timezone

from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry

redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
q = Queue("default", connection=redis)


def count_words(text: str) -> int:
    return len(text.split())


def resize(name: str, width: int, height: int = 0) -> dict:
    return {"name": name, "size": [width, height or width]}


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait(job, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while job.get_status(refresh=True) not in ("finished", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(job.id)
        time.sleep(0.05)
    return job.result


def run(workdir: str) -> dict:
    words = q.enqueue(count_words, "the quick brown fox")
    later = q.enqueue_in(timedelta(seconds=1), resize, "cat.png", 100, height=50)
    at = q.enqueue_at(datetime.now(timezone.utc) + timedelta(seconds=1), count_words, "a b")
    path = os.path.join(workdir, "data.txt")
    job = q.enqueue(read_file, path)
    wait(job)
    failed = job.get_status() == "failed"
    with open(path, "w") as f:
        f.write("hello")
    FailedJobRegistry(queue=q).requeue(job.id)
    return {
        "words": wait(words),
        "resized": wait(later),
        "at": wait(at),
        "failed_first": failed,
        "requeued": wait(job),
    }


if __name__ == "__main__":
    print(run("/tmp"))
