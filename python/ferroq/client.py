"""The producer: ``Client.enqueue`` writes tasks in asynq's Redis layout."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType

from ferroq import _options
from ferroq._native import NativeClient
from ferroq._options import Duration
from ferroq.errors import BatchEnqueueError, FerroqError, InvalidArgumentError
from ferroq.task import Task, TaskInfo

__all__ = ["Client", "build_request"]

_Request = tuple[
    str,
    bytes | None,
    dict[str, str],
    str | None,
    int | None,
    float | None,
    float | None,
    float | None,
    float | None,
    str | None,
    float | None,
    str | None,
]


def build_request(
    task: Task,
    *,
    queue: str | None = None,
    max_retry: int | None = None,
    timeout: Duration | None = None,
    deadline: datetime | None = None,
    unique: Duration | None = None,
    process_at: datetime | None = None,
    process_in: Duration | None = None,
    task_id: str | None = None,
    retention: Duration | None = None,
    group: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Request:
    """Validates a task and its enqueue options into the core's request tuple."""
    if not isinstance(task, Task):
        raise TypeError(f"expected a Task, not {task.__class__.__name__}")
    if process_at is not None and process_in is not None:
        raise InvalidArgumentError("give process_at or process_in, not both")
    at = _options.timestamp("process_at", process_at)
    delay = _options.seconds("process_in", process_in)
    if delay is not None:
        at = time.time() + delay
    for name, value in (("queue", queue), ("task_id", task_id), ("group", group)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidArgumentError(f"{name} must be a non-blank str")
    if max_retry is not None and (isinstance(max_retry, bool) or not isinstance(max_retry, int)):
        raise TypeError("max_retry must be an int")
    return (
        task.type,
        task._payload,
        _options.merged_headers(task.headers, headers),
        queue,
        max_retry,
        _options.seconds("timeout", timeout),
        _options.timestamp("deadline", deadline),
        _options.seconds("unique", unique),
        at,
        task_id,
        _options.seconds("retention", retention),
        group,
    )


class Client:
    """Enqueues tasks; safe to share between threads (it pools its connections).

    Args:
        redis_url: ``redis://[user:pass@]host:port/db``, ``rediss://`` for TLS or
            ``unix:///path.sock``. Defaults to ``$REDIS_URL``, then ``redis://127.0.0.1:6379/0``.
        namespace: Key prefix; ``asynq`` (the default) shares queues with asynq.
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
        namespace: str = "asynq",
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._native = NativeClient(
            _options.redis_url(redis_url), namespace, tls_ca=_options.read_ca(tls_ca_file)
        )

    def enqueue(
        self,
        task: Task,
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        deadline: datetime | None = None,
        unique: Duration | None = None,
        process_at: datetime | None = None,
        process_in: Duration | None = None,
        task_id: str | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TaskInfo:
        """Writes one task.

        Args:
            task: The task.
            queue: Queue name (default ``"default"``).
            max_retry: Retries after the first failure (default 25).
            timeout: Per-run time limit. Without a positive ``timeout`` and without ``deadline``
                the limit is 30 minutes, as in asynq (which also reads 0 as "not given").
            deadline: Aware datetime after which a run is cancelled.
            unique: Refuse duplicates of (queue, type, payload) for this long (>= 1 s).
            process_at: Aware datetime to run at (scheduled until then).
            process_in: Delay before running.
            task_id: Explicit ID (default: random UUID v4); unique per queue in every state.
            retention: Keep the task (and its result) this long after success.
            group: Aggregation group.
            headers: Headers laid over the task's own.

        Returns:
            What was written, with its state (pending, scheduled or aggregating).

        Raises:
            DuplicateTaskError: ``unique`` and a duplicate holds the lock.
            TaskIdConflictError: ``task_id`` is taken in that queue.
            InvalidArgumentError: A blank queue, ID or group, a naive datetime, both
                ``process_at`` and ``process_in``, or ``unique`` under 1 s.
            BrokerError: Redis failed.
        """
        req = build_request(
            task, queue=queue, max_retry=max_retry, timeout=timeout, deadline=deadline,
            unique=unique, process_at=process_at, process_in=process_in, task_id=task_id,
            retention=retention, group=group, headers=headers,
        )  # fmt: skip
        return TaskInfo._from_native(self._native.enqueue(req))

    def enqueue_many(
        self,
        tasks: Iterable[Task],
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        deadline: datetime | None = None,
        unique: Duration | None = None,
        process_at: datetime | None = None,
        process_in: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[TaskInfo]:
        """Writes many tasks with the same options in one pipelined round trip.

        Each task is written atomically on its own; the batch is not a transaction.

        Returns:
            One ``TaskInfo`` per task, in order.

        Raises:
            BatchEnqueueError: Some tasks were refused (duplicate, ID conflict); the others were
                written, and ``results`` tells which.
            BrokerError: Redis failed; none, some or all tasks may have been written.
        """
        reqs = [
            build_request(
                t,
                queue=queue,
                max_retry=max_retry,
                timeout=timeout,
                deadline=deadline,
                unique=unique,
                process_at=process_at,
                process_in=process_in,
                task_id=None,
                retention=retention,
                group=group,
                headers=headers,
            )
            for t in tasks
        ]
        results: list[TaskInfo | FerroqError] = [
            r if isinstance(r, FerroqError) else TaskInfo._from_native(r)
            for r in self._native.enqueue_many(reqs)
        ]
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
