"""The producers: ``Client`` writes tasks in asynq's Redis layout; ``AsyncClient`` for asyncio.

``AsyncClient`` makes the same writes without ever blocking its event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from ferroq import _options
from ferroq._aio import deliver
from ferroq._aio import submit as _submit
from ferroq._native import NativeClient, TaskOptions
from ferroq._options import Duration
from ferroq.codec import RAW
from ferroq.errors import BatchEnqueueError, FerroqError
from ferroq.handle import TaskHandle
from ferroq.options import layered
from ferroq.task import Task, TaskInfo

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroq.options import BatchOptions, EnqueueOptions

__all__ = ["AsyncClient", "Client"]


def _native_client(
    url: str | None,
    namespace: str | None,
    tls_ca_file: str | os.PathLike[str] | None,
    wait_for_replicas: int = 0,
    replica_timeout: Duration = 1.0,
) -> NativeClient:
    return NativeClient(
        _options.redis_url(url),
        namespace,
        tls_ca=_options.read_ca(tls_ca_file),
        wait_for_replicas=wait_for_replicas,
        replica_timeout=replica_timeout,
    )


def _task(task: object) -> Task:
    if not isinstance(task, Task):
        raise TypeError(f"expected a Task, not {task.__class__.__name__}")
    return task


class Client:
    """Enqueues tasks; safe to share between threads (it pools its connections).

    Args:
        redis_url: ``redis://[user:pass@]host:port/db``, ``rediss://`` for TLS,
            ``unix:///path.sock``, ``redis+cluster://host:port[,host:port...]`` for a Redis
            Cluster or ``redis+sentinel://host:port[,host:port...]/service_name[/db]`` for the
            master Sentinel names (``rediss+`` for TLS). Defaults to ``$REDIS_URL``, then
            ``redis://127.0.0.1:6379/0``.
        namespace: Key prefix; the default (asynq's, ``asynq``) shares queues with asynq.
        tls_ca_file: PEM file of the CA to trust for ``rediss://`` instead of the system's roots.
        wait_for_replicas: Durable mode: an enqueue returns only once this many replicas
            confirm it (``WAIT``), so a failover cannot lose it; 0 (the default) is off.
        replica_timeout: Seconds durable mode waits for the replicas (default 1) before it
            raises ``NotReplicatedError`` (the task is then on the master only).

    Raises:
        InvalidArgumentError: The URL cannot be parsed, or a durable-mode setting is out of
            range (0 to 100 replicas, a timeout from 1 ms to 10 s).

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
        wait_for_replicas: int = 0,
        replica_timeout: Duration = 1.0,
    ) -> None:
        self._native = _native_client(
            redis_url, namespace, tls_ca_file, wait_for_replicas, replica_timeout
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

    def handle(self, info: TaskInfo) -> TaskHandle[bytes]:
        """The handle of a task this client enqueued: wait for it, read its state and result.

        Its result is the raw bytes the handler wrote (``Task.write_result``); a task keeps one
        only when enqueued with ``retention``.
        """
        return TaskHandle(self._native, info.queue, info.id, codec=RAW, enqueued=info)

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


class AsyncClient:
    """``Client`` for asyncio: the same calls, awaited; nothing waits on Redis in the loop.

    Calls are handed to the core's I/O thread, which sends every enqueue waiting at that
    moment in one pipeline and settles their futures with one wake-up of the loop: many
    coroutines enqueueing at once cost few round trips (bench/asyncio.py measures it against
    arq, SAQ and taskiq). Handles it returns are awaited the same way (``await handle``).

    Args:
        redis_url: As for ``Client``.
        namespace: As for ``Client``.
        tls_ca_file: As for ``Client``.
        wait_for_replicas: As for ``Client``.
        replica_timeout: As for ``Client``.

    Example::

        async with AsyncClient("redis://127.0.0.1:6379") as client:
            info = await client.enqueue(Task("email:send", b"{}"), queue="critical")
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        wait_for_replicas: int = 0,
        replica_timeout: Duration = 1.0,
    ) -> None:
        self._native = _native_client(
            redis_url, namespace, tls_ca_file, wait_for_replicas, replica_timeout
        )
        self._native.start_io(deliver)

    async def enqueue(
        self,
        task: Task,
        *,
        options: TaskOptions | None = None,
        **kwargs: Unpack[EnqueueOptions],
    ) -> TaskInfo:
        """As ``Client.enqueue``, awaited."""
        t = _task(task)
        opts = layered(options, kwargs)
        n = self._native
        info: TaskInfo = await _submit(n, n.submit_enqueue, t.type, t._payload, t.headers, opts)
        return info

    async def enqueue_many(
        self,
        tasks: Iterable[Task],
        *,
        options: TaskOptions | None = None,
        **kwargs: Unpack[BatchOptions],
    ) -> list[TaskInfo]:
        """As ``Client.enqueue_many``, awaited."""
        if "task_id" in kwargs or (options is not None and options.task_id is not None):
            raise TypeError("enqueue_many takes no task_id: every task needs its own")
        opts = layered(options, kwargs)
        batch = [_task(t) for t in tasks]
        n = self._native
        results: list[TaskInfo | FerroqError] = await _submit(
            n, n.submit_enqueue_many, [t.type for t in batch], [t._payload for t in batch],
            [t.headers for t in batch], opts,
        )  # fmt: skip
        if any(isinstance(r, FerroqError) for r in results):
            raise BatchEnqueueError(results)
        return [r for r in results if isinstance(r, TaskInfo)]

    async def task_info(self, queue: str, task_id: str) -> TaskInfo:
        """One task, read back (``TaskNotFoundError``/``QueueNotFoundError`` if not there)."""
        n = self._native
        info: TaskInfo = await _submit(n, n.submit_task_info, queue, task_id)
        return info

    async def ping(self) -> None:
        """Round-trips a PING; raises ``BrokerConnectionError`` when Redis is unreachable."""
        n = self._native
        await _submit(n, n.submit_ping)

    def handle(self, info: TaskInfo) -> TaskHandle[bytes]:
        """The handle of a task this client enqueued (its result is the raw bytes)."""
        return TaskHandle(self._native, info.queue, info.id, codec=RAW, enqueued=info)

    async def close(self) -> None:
        """Closes pooled connections; the client reconnects if used again."""
        self._native.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
