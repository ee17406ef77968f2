"""Sentry reporting through the server's error handler: every failed run becomes an event.

``error_handler`` sees each error a handler raised (retried or not); the event carries the task's
type, queue, ID and attempt as tags and context, and Sentry's own traceback. Set it on any
``Server`` (``app.server(error_handler=...)``, or ``Server(..., error_handler=...)``).
"""

from __future__ import annotations

import sentry_sdk

from ferroq import Task


def report_to_sentry(task: Task, error: BaseException) -> None:
    """A ``Server`` error_handler that sends ``error`` to Sentry, tagged with the task."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("ferroq.task_type", task.type)
        scope.set_tag("ferroq.queue", task.queue or "")
        scope.set_context(
            "ferroq", {"task_id": task.id, "attempt": task.retry_count + 1,
                       "max_retry": task.max_retry},
        )  # fmt: skip
        sentry_sdk.capture_exception(error)
