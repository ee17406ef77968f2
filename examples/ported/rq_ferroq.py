"""The RQ app of rq_original.py on ferroq: the same queue calls, results and requeue.

Worker: ``ferroq worker rq_ferroq:app``.
"""

import os
from datetime import datetime, timedelta, timezone

from ferroq import App, Queue

app = App(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), max_retry=0)
q = Queue("default", app=app)


@app.task
def count_words(text: str) -> int:
    return len(text.split())


@app.task
def resize(name: str, width: int, height: int = 0) -> dict:
    return {"name": name, "size": [width, height or width]}


@app.task
def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait(job, timeout: float = 30):
    try:
        return job.get(timeout=timeout)
    except OSError:
        return None


def run(workdir: str) -> dict:
    words = q.enqueue(count_words, "the quick brown fox")
    later = q.enqueue_in(timedelta(seconds=1), resize, "cat.png", 100, height=50)
    at = q.enqueue_at(datetime.now(timezone.utc) + timedelta(seconds=1), count_words, "a b")
    path = os.path.join(workdir, "data.txt")
    job = q.enqueue(read_file, path)
    wait(job)
    failed = job.state.value == "archived"
    with open(path, "w") as f:
        f.write("hello")
    job.requeue()
    return {
        "words": wait(words),
        "resized": wait(later),
        "at": wait(at),
        "failed_first": failed,
        "requeued": wait(job),
    }


if __name__ == "__main__":
    print(run("/tmp"))
