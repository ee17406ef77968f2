"""The producer: ``Client.enqueue`` writes tasks in asynq's Redis layout."""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from ferroq import _options
from ferroq._native import NativeClient, TaskOptions
from ferroq.errors import BatchEnqueueError, FerroqError
from ferroq.options import layered
from ferroq.task import Task, TaskInfo

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroq.options import BatchOptions, EnqueueOptions

__all__ = ["Client"]


def _task(task: object) -> Task:
    if not isinstance(task, Task):
        raise TypeError(f"expected a Task, not {task.__class__.__name__}")
    return task


class Client:
    """Enqueues tasks; safe to share between threads (it pools its connections).

    Args:
        redis_url: ``redis://[user:pass@]host:port/db``, ``rediss://`` for TLS or
            ``unix:///path.sock``. Defaults to ``$REDIS_URL``, then ``redis://127.0.0.1:6379/0``.
        namespace: Key prefix; the default (asynq's, ``asynq``) shares queues with asynq.
        tls_ca_file: PEM file of the CA to trust for ``rediss://`` instead of the system's roots.

    Raises:
        InvalidArgumentError: The URL cannot be parsed.

    Example::

        with Client("redis://127.0.0.1:6379") as client:
            info = client.enqueue(Task("email:send", b'{"to": 42}'), queue="critical")
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._native = NativeClient(
            _options.redis_url(redis_url), namespace, tls_ca=_options.read_ca(tls_ca_file)
        )

    def enqueue(
        self,
        task: Task,
        *,
        options: TaskOptions | None = None,
        **kwargs: Unpack[EnqueueOptions],
    ) -> TaskInfo:
        """Writes one task.

        Args:
            task: The task.
            options: Options to start from; keyword options are laid over them.
            **kwargs: Enqueue options (``ferroq.options.EnqueueOptions``): ``queue``,
                ``max_retry``, ``timeout``, ``deadline``, ``unique``, ``process_at``,
                ``process_in``, ``task_id``, ``retention``, ``group``, ``headers``; asynq's
                defaults for those left out (queue ``default``, 25 retries, a 30-minute
                timeout when neither ``timeout`` nor ``deadline`` is given).

        Returns:
            What was written, with its state (pending, scheduled or aggregating).

        Raises:
            DuplicateTaskError: ``unique`` and a duplicate holds the lock.
            TaskIdConflictError: ``task_id`` is taken in that queue.
            InvalidArgumentError: A blank queue, ID or group, a naive datetime, a negative
                duration, both ``process_at`` and ``process_in``, or ``unique`` under 1 s.
            TypeError: An option of the wrong type, or an unknown one.
            BrokerError: Redis failed.
        """
        t = _task(task)
        opts = layered(options, kwargs)
        return self._native.enqueue(t.type, t._payload, t.headers, opts)

    def enqueue_many(
        self,
        tasks: Iterable[Task],
        *,
        options: TaskOptions | None = None,
        **kwargs: Unpack[BatchOptions],
    ) -> list[TaskInfo]:
        """Writes many tasks with the same options in one pipelined round trip.

        Each task is written atomically on its own; the batch is not a transaction. Options
        are checked once, before anything is sent.

        Args:
            tasks: The tasks.
            options: Options to start from; keyword options are laid over them.
            **kwargs: The options of ``enqueue`` but ``task_id`` (every task needs its own).

        Returns:
            One ``TaskInfo`` per task, in order.

        Raises:
            BatchEnqueueError: Some tasks were refused (duplicate, ID conflict); the others were
                written, and ``results`` tells which.
            InvalidArgumentError: An option is invalid; nothing was written.
            BrokerError: Redis failed; none, some or all tasks may have been written.
        """
        if "task_id" in kwargs or (options is not None and options.task_id is not None):
            raise TypeError("enqueue_many takes no task_id: every task needs its own")
        opts = layered(options, kwargs)
        batch = [_task(t) for t in tasks]
        results: list[TaskInfo | FerroqError] = self._native.enqueue_many(
            [t.type for t in batch], [t._payload for t in batch], [t.headers for t in batch], opts
        )
        if any(isinstance(r, FerroqError) for r in results):
            raise BatchEnqueueError(results)
        return [r for r in results if isinstance(r, TaskInfo)]

    def ping(self) -> None:
        """Round-trips a PING; raises ``BrokerConnectionError`` when Redis is unreachable."""
        self._native.ping()

    def close(self) -> None:
        """Closes pooled connections; the client reconnects if used again."""
        self._native.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
