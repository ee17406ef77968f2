"""ferroq's exception tree.

Declared in the Rust core under this module's name and re-exported here, so an error raised deep
in Rust and one raised in Python are the same class, and every ``__module__`` is
``ferroq.errors``::

    FerroqError
    ├── BrokerError                 Redis failed or answered with an error
    │   ├── BrokerConnectionError   Redis could not be reached, or the connection dropped
    │   └── NotReplicatedError      durable mode: too few replicas confirmed a write in time
    ├── InvalidArgumentError        a value the API does not accept
    │   └── CronSpecError           a cron spec that cannot be parsed (names field and column)
    ├── MalformedMessageError       bytes in Redis are not a valid task message
    ├── DuplicateTaskError          a unique task holds the lock
    ├── TaskIdConflictError         the task ID is taken in that queue
    ├── TaskNotFoundError           the task is not (or no longer) there
    ├── QueueNotFoundError          no such queue (an Inspector call)
    ├── QueueNotEmptyError          the queue holds tasks (delete it with force)
    ├── ServerClosedError           the server was shut down or never started
    ├── HandlerNotFoundError        no handler for the task's type
    ├── SkipRetry                   raise it to archive the task at once
    ├── RevokeTask                  raise it to drop the task without retry or archive
    ├── DeadlineExceeded            a run passed its timeout or deadline (also a TimeoutError)
    ├── TaskCancelled               a run was cancelled, or its lease was lost
    ├── LeaseExpired                a task's server stopped renewing its lease (it is recovered)
    ├── BatchEnqueueError           some tasks of an ``enqueue_many`` failed
    ├── Retry                       raise it from a task to retry it after ``delay``
    ├── RemoteTaskError             a task function failed: its exception, re-raised by ``get``
    ├── ResultUnavailableError      the task keeps no result to wait for
    └── ResultTimeoutError          ``get(timeout=)`` ran out (also a TimeoutError)

A wrong type (a ``str`` where seconds are expected) is Python's ``TypeError``, not part of the
tree.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ferroq._native import (
    BrokerConnectionError,
    BrokerError,
    CronSpecError,
    DuplicateTaskError,
    FerroqError,
    HandlerNotFoundError,
    InvalidArgumentError,
    MalformedMessageError,
    NotReplicatedError,
    QueueNotEmptyError,
    QueueNotFoundError,
    RevokeTask,
    ServerClosedError,
    SkipRetry,
    TaskIdConflictError,
    TaskNotFoundError,
)

if TYPE_CHECKING:
    from ferroq._native import TaskInfo

__all__ = [
    "BatchEnqueueError",
    "BrokerConnectionError",
    "BrokerError",
    "CronSpecError",
    "DeadlineExceeded",
    "DuplicateTaskError",
    "FerroqError",
    "HandlerNotFoundError",
    "InvalidArgumentError",
    "LeaseExpired",
    "MalformedMessageError",
    "NotReplicatedError",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "RemoteTaskError",
    "ResultTimeoutError",
    "ResultUnavailableError",
    "Retry",
    "RevokeTask",
    "ServerClosedError",
    "SkipRetry",
    "TaskCancelled",
    "TaskIdConflictError",
    "TaskNotFoundError",
]


class DeadlineExceeded(FerroqError, TimeoutError):
    """The task ran past its timeout or deadline (asynq: ``context deadline exceeded``)."""

    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class TaskCancelled(FerroqError):
    """The task was cancelled by an Inspector or lost its lease (asynq: ``context canceled``)."""

    def __init__(self) -> None:
        super().__init__("context canceled")


class LeaseExpired(FerroqError):
    """A task's lease ran out: its server died (or lost Redis) and another recovered it.

    ``is_failure`` and ``retry_delay`` see it when a server recovers such a task (as asynq's
    recoverer asks them; ``error_handler``, for handler errors, does not); the error stored
    with the task is asynq's ``asynq: task lease expired``.
    """

    def __init__(self, message: str = "asynq: task lease expired") -> None:
        super().__init__(message)


class BatchEnqueueError(FerroqError):
    """Some tasks of an ``enqueue_many`` call were not enqueued.

    The others were: ``results`` holds, in input order, a ``TaskInfo`` for each task written and
    the exception for each task refused.

    Attributes:
        results: One ``TaskInfo`` or exception per task, in input order.
    """

    def __init__(self, results: list[TaskInfo | FerroqError]) -> None:
        self.results = results
        failed = [r for r in results if isinstance(r, BaseException)]
        super().__init__(f"{len(failed)} of {len(results)} tasks were not enqueued: {failed[0]}")

    @property
    def errors(self) -> list[FerroqError]:
        """The exceptions only."""
        return [r for r in self.results if isinstance(r, FerroqError)]


class Retry(FerroqError):
    """Raise it from a task to run it again after ``delay`` (Celery's ``self.retry``).

    The attempt counts as a failure: with no retries left the task is archived.

    Args:
        delay: Seconds (or a ``timedelta``) before the next attempt; ``None`` for the task's
            retry policy (or asynq's formula).
        message: Why, stored as the task's last error.
    """

    def __init__(self, delay: float | timedelta | None = None, message: str = "retry requested"):
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if delay is not None and (isinstance(delay, bool) or not delay >= 0):
            raise InvalidArgumentError(f"Retry delay must be seconds >= 0, got {delay!r}")
        self.delay: float | None = None if delay is None else float(delay)
        super().__init__(message)


class RemoteTaskError(FerroqError):
    """A task function failed for good: its exception, as the worker recorded it.

    ``TaskHandle.get`` raises it. When the original type is a built-in exception, or one defined
    in a module this process already imported, the error raised is also an instance of that
    type (``except ValueError:`` catches a remote ``ValueError``); nothing is imported or
    unpickled to make it.

    Attributes:
        task_id: The failed task.
        type_name: The original exception's ``module.QualName`` (``builtins.ValueError``).
        message: Its message.
        traceback: The worker's traceback text (empty when the worker recorded none, as a Go
            server does).
    """

    def __init__(self, task_id: str, type_name: str, message: str, traceback: str = "") -> None:
        self.task_id = task_id
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        short = type_name.rpartition(".")[2] or "Error"
        # Exception.__init__ directly: the original type's own __init__ may want other arguments.
        Exception.__init__(self, f"task {task_id} failed: {short}: {message}" if message else
                           f"task {task_id} failed: {short}")  # fmt: skip

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteTaskError, (self.task_id, self.type_name, self.message, self.traceback))


class ResultUnavailableError(FerroqError):
    """The task keeps no result to wait for (``ignore_result``, or no ``result_ttl``)."""


class ResultTimeoutError(FerroqError, TimeoutError):
    """``TaskHandle.get(timeout=...)`` returned before the task ended."""
