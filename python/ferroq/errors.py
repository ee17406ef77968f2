"""ferroq's exception tree.

Declared in the Rust core under this module's name and re-exported here, so an error raised deep
in Rust and one raised in Python are the same class, and every ``__module__`` is
``ferroq.errors``::

    FerroqError
    ├── BrokerError                 Redis failed or answered with an error
    │   └── BrokerConnectionError   Redis could not be reached, or the connection dropped
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
    └── BatchEnqueueError           some tasks of an ``enqueue_many`` failed

A wrong type (a ``str`` where seconds are expected) is Python's ``TypeError``, not part of the
tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferroq._native import (
    BrokerConnectionError,
    BrokerError,
    CronSpecError,
    DuplicateTaskError,
    FerroqError,
    HandlerNotFoundError,
    InvalidArgumentError,
    MalformedMessageError,
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
    "QueueNotEmptyError",
    "QueueNotFoundError",
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
