"""RQ's shape on ferroq's engine: ``Queue(name, app).enqueue(func, *args, **kwargs)``.

::

    q = Queue("default", app=app)
    job = q.enqueue(count_words, "https://example.com")      # a TaskHandle
    q.enqueue_in(timedelta(minutes=5), count_words, url)
    q.enqueue_at(datetime(2026, 1, 1, tzinfo=timezone.utc), count_words, url)
    job.result                                                # None until it finished

``func`` is a task function of the App (``@app.task``): RQ imports any function by its dotted
name from the message, which runs whatever code a writer to Redis names; ferroq runs only the
functions an App registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from ferroq._options import Duration
from ferroq.app import App, _TaskBase
from ferroq.handle import TaskHandle

__all__ = ["Queue"]

P = ParamSpec("P")
R = TypeVar("R")


class Queue:
    """A named queue to put calls of an App's task functions on (RQ's ``Queue``).

    Args:
        name: The queue (every call enqueued here goes to it, whatever the task's own queue).
        app: The App whose client writes the calls.
    """

    def __init__(self, name: str = "default", *, app: App) -> None:
        self.name = name
        self.app = app

    def enqueue(self, func: _TaskBase[P, R], /, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueues ``func(*args, **kwargs)`` to run as soon as a worker is free."""
        return _call(func, {"queue": self.name}, args, kwargs)

    def enqueue_in(
        self, delay: Duration, func: _TaskBase[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]:
        """Enqueues ``func(*args, **kwargs)`` to run ``delay`` (seconds or a timedelta) from now."""
        return _call(func, {"queue": self.name, "countdown": delay}, args, kwargs)

    def enqueue_at(
        self, when: datetime, func: _TaskBase[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[R]:
        """Enqueues ``func(*args, **kwargs)`` to run at ``when`` (an aware datetime)."""
        return _call(func, {"queue": self.name, "eta": when}, args, kwargs)

    def fetch_job(self, job_id: str) -> TaskHandle[Any]:
        """The handle of a call enqueued here earlier (RQ's ``Queue.fetch_job``)."""
        return self.app.handle(job_id, queue=self.name)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"


def _call(
    func: _TaskBase[P, R],
    options: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> TaskHandle[R]:
    if not isinstance(func, _TaskBase):
        raise TypeError(
            f"{getattr(func, '__name__', func)!r} is not a task function: decorate it with "
            "@app.task (ferroq runs only the functions an App registered)"
        )
    return func._enqueue(args, kwargs, options)
