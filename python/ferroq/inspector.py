"""``Inspector``: see and act on queues, tasks, servers and schedulers (asynq's Inspector).

Every call is done by the Rust core in a constant number of round trips (a page of tasks is one
range read and one pipeline, never a round trip per task), and works the same on tasks written
by ferroq and by Go asynq::

    from ferroq import Inspector

    with Inspector("redis://127.0.0.1:6379") as insp:
        for info in insp.list_archived_tasks("default"):
            print(info.id, info.type, info.last_error)
            insp.run_task("default", info.id)

Errors are typed: a queue that does not exist raises ``QueueNotFoundError``, a task that is not
there ``TaskNotFoundError``, a task whose state forbids the call (running an active task,
archiving an archived one) ``InvalidArgumentError``; none of them changes anything.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from ferroq import _options
from ferroq._native import (
    DailyStats,
    GroupInfo,
    NativeInspector,
    QueueInfo,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    TaskInfo,
    TaskState,
    WorkerInfo,
)

__all__ = [
    "AsyncInspector",
    "DailyStats",
    "GroupInfo",
    "Inspector",
    "QueueInfo",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "ServerInfo",
    "WorkerInfo",
]

_R = TypeVar("_R")

#: asynq's default page size, as the core defines it.
DEFAULT_PAGE_SIZE: int = NativeInspector.default_page_size


class Inspector:
    """Reads and manages the queues of one Redis (one namespace).

    Args:
        redis_url: Redis URL (see ``Client``); defaults to ``$REDIS_URL``.
        namespace: Key prefix (default asynq's, ``asynq``).
        tls_ca_file: PEM file of the CA to trust for ``rediss://``.
        archive_max_size: Trim the archive to this many tasks when this Inspector archives
            tasks (as a server's ``archive_max_size`` does). Without it (nor
            ``archive_max_age``), archiving by hand trims nothing: the servers trim with their
            own limits the next time they archive a task, so an Inspector never deletes what a
            server was told to keep. One limit given, the other is the server's default.
        archive_max_age: Likewise, the age (seconds or ``timedelta``) beyond which archived
            tasks are deleted when this Inspector archives tasks.

    Listings are paged: ``page`` is 1-based and ``page_size`` defaults to asynq's
    {default_page_size} (at most {max_page_size}); pending and active tasks are listed oldest
    first, the others by their score (process-at, retry-at, archive time, expiry), lowest first,
    as asynq lists them.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        archive_max_size: int | None = None,
        archive_max_age: float | timedelta | None = None,
    ) -> None:
        self._native = NativeInspector(
            _options.redis_url(redis_url),
            namespace,
            _options.read_ca(tls_ca_file),
            archive_max_size,
            archive_max_age,
        )

    # Queues

    def queues(self) -> list[str]:
        """Every queue name producers registered, sorted."""
        return self._native.queues()

    def get_queue_info(self, queue: str, *, memory: bool = True) -> QueueInfo:
        """Sizes, counters, latency and (sampled) memory of one queue.

        Args:
            queue: Queue name.
            memory: Sample ``MEMORY USAGE`` for ``memory_usage`` (asynq always does; it is the
                costly part of the read). Without it, ``memory_usage`` is ``None``.

        Raises:
            QueueNotFoundError: No such queue.
        """
        return self._native.queue_infos([queue], memory)[0]

    def get_queue_infos(
        self, queues: list[str] | None = None, *, memory: bool = False
    ) -> list[QueueInfo]:
        """``QueueInfo`` of many queues (every queue by default) in one batch of reads.

        Raises:
            QueueNotFoundError: One of ``queues`` does not exist.
        """
        return self._native.queue_infos(queues, memory)

    def history(self, queue: str, days: int) -> list[DailyStats]:
        """Processed and failed counts per UTC day, newest first.

        Today and the ``days - 1`` days before it (daily counters are kept 90 days).

        Raises:
            QueueNotFoundError: No such queue.
            InvalidArgumentError: ``days`` under 1.
        """
        return self._native.history(queue, days)

    def delete_queue(self, queue: str, force: bool = False) -> None:
        """Deletes a queue with every key it has.

        Tasks in every state, completed ones, groups, counters, unique locks and its pause flag
        go (asynq's ``DeleteQueue`` leaves most of them).

        Args:
            queue: Queue name.
            force: Delete its pending, scheduled, retry, archived and aggregating tasks too.
                A queue with active tasks is never deleted.

        Raises:
            QueueNotFoundError: No such queue.
            QueueNotEmptyError: It holds tasks and ``force`` is false, or it has active tasks.
        """
        self._native.delete_queue(queue, force)

    def pause_queue(self, queue: str) -> None:
        """Pauses a queue: servers stop leasing its tasks (running ones finish).

        Raises:
            QueueNotFoundError: No such queue.
            InvalidArgumentError: It is already paused.
        """
        self._native.pause_queue(queue)

    def unpause_queue(self, queue: str) -> None:
        """Resumes a paused queue.

        Raises:
            QueueNotFoundError: No such queue.
            InvalidArgumentError: It is not paused.
        """
        self._native.unpause_queue(queue)

    def groups(self, queue: str) -> list[GroupInfo]:
        """The aggregation groups of a queue with their sizes, by name.

        Raises:
            QueueNotFoundError: No such queue.
        """
        return self._native.groups(queue)

    # Tasks: reads

    def get_task_info(self, queue: str, task_id: str) -> TaskInfo:
        """One task in any state, with its last error, result and next run.

        Raises:
            QueueNotFoundError: No such queue.
            TaskNotFoundError: No such task in the queue.
            MalformedMessageError: Its message in Redis cannot be decoded.
        """
        return self._native.task_info(queue, task_id)

    def list_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        page: int | None = None,
        page_size: int | None = None,
        group: str | None = None,
    ) -> list[TaskInfo]:
        """A page of the tasks of ``queue`` in ``state`` (of ``group`` for aggregating tasks).

        Tasks whose message cannot be decoded are left out of listings (and logged); read one
        with ``get_task_info`` to see the error, delete it with ``delete_task``.

        Raises:
            QueueNotFoundError: No such queue.
            InvalidArgumentError: A page under 1, a page size out of range, or aggregating
                tasks without a group.
            ValueError: ``state`` names no state.
        """
        return self._native.list_tasks(queue, _state(state), page, page_size, group)

    def list_pending_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Pending tasks, oldest first (the next to run first)."""
        return self._native.list_tasks(queue, TaskState.PENDING, page, page_size)

    def list_active_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Active tasks, oldest first; ``is_orphaned`` marks those no live lease covers."""
        return self._native.list_tasks(queue, TaskState.ACTIVE, page, page_size)

    def list_scheduled_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Scheduled tasks, soonest first."""
        return self._native.list_tasks(queue, TaskState.SCHEDULED, page, page_size)

    def list_retry_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Tasks waiting to be retried, soonest first."""
        return self._native.list_tasks(queue, TaskState.RETRY, page, page_size)

    def list_archived_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Archived tasks, oldest archive first."""
        return self._native.list_tasks(queue, TaskState.ARCHIVED, page, page_size)

    def list_completed_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Completed tasks (kept for their retention), first to expire first."""
        return self._native.list_tasks(queue, TaskState.COMPLETED, page, page_size)

    def list_aggregating_tasks(
        self, queue: str, group: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """Tasks waiting in ``group``, first added first."""
        return self._native.list_tasks(queue, TaskState.AGGREGATING, page, page_size, group)

    # Tasks: one at a time

    def run_task(self, queue: str, task_id: str) -> None:
        """Moves a scheduled, retry, archived, completed or aggregating task to pending.

        Raises:
            QueueNotFoundError: No such queue.
            TaskNotFoundError: No such task.
            InvalidArgumentError: It is active or already pending.
        """
        self._native.run_task(queue, task_id)

    def archive_task(self, queue: str, task_id: str) -> None:
        """Archives a pending, scheduled, retry, completed or aggregating task.

        Raises:
            QueueNotFoundError: No such queue.
            TaskNotFoundError: No such task.
            InvalidArgumentError: It is active or already archived.
        """
        self._native.archive_task(queue, task_id)

    def delete_task(self, queue: str, task_id: str) -> None:
        """Deletes a task that is not active, and releases its unique lock.

        Raises:
            QueueNotFoundError: No such queue.
            TaskNotFoundError: No such task.
            InvalidArgumentError: It is active (cancel it first).
        """
        self._native.delete_task(queue, task_id)

    def update_task_payload(self, queue: str, task_id: str, payload: bytes) -> TaskInfo:
        """Replaces a scheduled task's payload; returns the task as it now is.

        Raises:
            QueueNotFoundError: No such queue.
            TaskNotFoundError: No such task.
            InvalidArgumentError: It is not scheduled.
        """
        return self._native.update_task_payload(queue, task_id, payload)

    def cancel_processing(self, task_id: str) -> int:
        """Asks the server running a task to cancel it (best effort, as asynq).

        The handler sees ``TaskCancelled``; the task then fails as usual. Returns how many
        servers heard the request (0: none listens; it does not say whether one ran the task).
        """
        return self._native.cancel_processing(task_id)

    # Tasks: all of a state

    def run_all_scheduled_tasks(self, queue: str) -> int:
        """Moves every scheduled task to pending; returns how many."""
        return self._native.run_all(queue, TaskState.SCHEDULED)

    def run_all_retry_tasks(self, queue: str) -> int:
        """Moves every retry task to pending; returns how many."""
        return self._native.run_all(queue, TaskState.RETRY)

    def run_all_archived_tasks(self, queue: str) -> int:
        """Moves every archived task to pending; returns how many."""
        return self._native.run_all(queue, TaskState.ARCHIVED)

    def run_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """Moves every task of ``group`` to pending; returns how many."""
        return self._native.run_all(queue, TaskState.AGGREGATING, group)

    def archive_all_pending_tasks(self, queue: str) -> int:
        """Archives every pending task; returns how many."""
        return self._native.archive_all(queue, TaskState.PENDING)

    def archive_all_scheduled_tasks(self, queue: str) -> int:
        """Archives every scheduled task; returns how many."""
        return self._native.archive_all(queue, TaskState.SCHEDULED)

    def archive_all_retry_tasks(self, queue: str) -> int:
        """Archives every retry task; returns how many."""
        return self._native.archive_all(queue, TaskState.RETRY)

    def archive_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """Archives every task of ``group``; returns how many."""
        return self._native.archive_all(queue, TaskState.AGGREGATING, group)

    def delete_all_pending_tasks(self, queue: str) -> int:
        """Deletes every pending task (releasing unique locks); returns how many."""
        return self._native.delete_all(queue, TaskState.PENDING)

    def delete_all_scheduled_tasks(self, queue: str) -> int:
        """Deletes every scheduled task; returns how many."""
        return self._native.delete_all(queue, TaskState.SCHEDULED)

    def delete_all_retry_tasks(self, queue: str) -> int:
        """Deletes every retry task; returns how many."""
        return self._native.delete_all(queue, TaskState.RETRY)

    def delete_all_archived_tasks(self, queue: str) -> int:
        """Deletes every archived task; returns how many."""
        return self._native.delete_all(queue, TaskState.ARCHIVED)

    def delete_all_completed_tasks(self, queue: str) -> int:
        """Deletes every completed task; returns how many."""
        return self._native.delete_all(queue, TaskState.COMPLETED)

    def delete_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """Deletes every task of ``group``; returns how many."""
        return self._native.delete_all(queue, TaskState.AGGREGATING, group)

    def run_all(self, queue: str, state: TaskState | str, *, group: str | None = None) -> int:
        """Moves every task of ``state`` to pending (scheduled, retry, archived, aggregating).

        Raises:
            InvalidArgumentError: A state whose tasks cannot all be run.
        """
        return self._native.run_all(queue, _state(state), group)

    def archive_all(self, queue: str, state: TaskState | str, *, group: str | None = None) -> int:
        """Archives every task of ``state`` (pending, scheduled, retry, aggregating).

        Raises:
            InvalidArgumentError: A state whose tasks cannot all be archived.
        """
        return self._native.archive_all(queue, _state(state), group)

    def delete_all(self, queue: str, state: TaskState | str, *, group: str | None = None) -> int:
        """Deletes every task of ``state`` (any but active).

        Raises:
            InvalidArgumentError: Active tasks.
        """
        return self._native.delete_all(queue, _state(state), group)

    # Servers and schedulers

    def servers(self) -> list[ServerInfo]:
        """Live servers (their heartbeat has not expired) with the tasks they run."""
        return self._native.servers()

    def scheduler_entries(self) -> list[SchedulerEntry]:
        """The entries live schedulers publish, with their next and previous firing."""
        return self._native.scheduler_entries()

    def list_scheduler_enqueue_events(
        self, entry_id: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[SchedulerEnqueueEvent]:
        """The tasks a scheduler entry enqueued, newest first (the last 1,000 are kept)."""
        return self._native.scheduler_enqueue_events(entry_id, page, page_size)

    def redis_info(self) -> dict[str, str]:
        """What ``ferroq stats`` shows of Redis: version, uptime, clients, memory, role."""
        return self._native.server_summary()

    def ping(self) -> None:
        """Checks that Redis answers.

        Raises:
            BrokerConnectionError: It does not.
        """
        self._native.ping()

    def close(self) -> None:
        """Closes idle connections (the Inspector stays usable)."""
        self._native.close()

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncInspector:
    """``Inspector`` for asyncio: every call awaited, none waiting on Redis in the event loop.

    The calls run on the Inspector's own threads (two; the core releases the GIL while it waits
    on Redis) and settle their futures in the loop, so an admin endpoint or a dashboard in an
    asyncio app can inspect queues without stalling the loop. Arguments, results and errors are
    ``Inspector``'s.

    Args:
        redis_url: As for ``Inspector``.
        namespace: As for ``Inspector``.
        tls_ca_file: As for ``Inspector``.
        archive_max_size: As for ``Inspector``.
        archive_max_age: As for ``Inspector``.

    Example::

        async with AsyncInspector("redis://127.0.0.1:6379") as insp:
            info = await insp.get_queue_info("default")
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        archive_max_size: int | None = None,
        archive_max_age: float | timedelta | None = None,
    ) -> None:
        self._sync = Inspector(
            redis_url, namespace=namespace, tls_ca_file=tls_ca_file,
            archive_max_size=archive_max_size, archive_max_age=archive_max_age,
        )  # fmt: skip
        self._threads: ThreadPoolExecutor | None = ThreadPoolExecutor(
            2, thread_name_prefix="ferroq-inspector"
        )

    async def _run(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        loop = asyncio.get_running_loop()
        if self._threads is None:  # closed, and used again (as an Inspector can be)
            self._threads = ThreadPoolExecutor(2, thread_name_prefix="ferroq-inspector")
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    async def queues(self) -> list[str]:
        """``Inspector.queues``, awaited."""
        return await self._run(self._sync.queues)

    async def get_queue_info(self, queue: str, *, memory: bool = True) -> QueueInfo:
        """``Inspector.get_queue_info``, awaited."""
        return await self._run(self._sync.get_queue_info, queue, memory=memory)

    async def get_queue_infos(
        self, queues: list[str] | None = None, *, memory: bool = False
    ) -> list[QueueInfo]:
        """``Inspector.get_queue_infos``, awaited."""
        return await self._run(self._sync.get_queue_infos, queues, memory=memory)

    async def history(self, queue: str, days: int) -> list[DailyStats]:
        """``Inspector.history``, awaited."""
        return await self._run(self._sync.history, queue, days)

    async def delete_queue(self, queue: str, force: bool = False) -> None:
        """``Inspector.delete_queue``, awaited."""
        return await self._run(self._sync.delete_queue, queue, force)

    async def pause_queue(self, queue: str) -> None:
        """``Inspector.pause_queue``, awaited."""
        return await self._run(self._sync.pause_queue, queue)

    async def unpause_queue(self, queue: str) -> None:
        """``Inspector.unpause_queue``, awaited."""
        return await self._run(self._sync.unpause_queue, queue)

    async def groups(self, queue: str) -> list[GroupInfo]:
        """``Inspector.groups``, awaited."""
        return await self._run(self._sync.groups, queue)

    async def get_task_info(self, queue: str, task_id: str) -> TaskInfo:
        """``Inspector.get_task_info``, awaited."""
        return await self._run(self._sync.get_task_info, queue, task_id)

    async def list_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        page: int | None = None,
        page_size: int | None = None,
        group: str | None = None,
    ) -> list[TaskInfo]:
        """``Inspector.list_tasks``, awaited."""
        return await self._run(
            self._sync.list_tasks, queue, state, page=page, page_size=page_size, group=group
        )

    async def list_pending_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_pending_tasks``, awaited."""
        return await self._run(self._sync.list_pending_tasks, queue, page=page, page_size=page_size)

    async def list_active_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_active_tasks``, awaited."""
        return await self._run(self._sync.list_active_tasks, queue, page=page, page_size=page_size)

    async def list_scheduled_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_scheduled_tasks``, awaited."""
        return await self._run(
            self._sync.list_scheduled_tasks, queue, page=page, page_size=page_size
        )

    async def list_retry_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_retry_tasks``, awaited."""
        return await self._run(self._sync.list_retry_tasks, queue, page=page, page_size=page_size)

    async def list_archived_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_archived_tasks``, awaited."""
        return await self._run(
            self._sync.list_archived_tasks, queue, page=page, page_size=page_size
        )

    async def list_completed_tasks(
        self, queue: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_completed_tasks``, awaited."""
        return await self._run(
            self._sync.list_completed_tasks, queue, page=page, page_size=page_size
        )

    async def list_aggregating_tasks(
        self, queue: str, group: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[TaskInfo]:
        """``Inspector.list_aggregating_tasks``, awaited."""
        return await self._run(
            self._sync.list_aggregating_tasks, queue, group, page=page, page_size=page_size
        )

    async def run_task(self, queue: str, task_id: str) -> None:
        """``Inspector.run_task``, awaited."""
        return await self._run(self._sync.run_task, queue, task_id)

    async def archive_task(self, queue: str, task_id: str) -> None:
        """``Inspector.archive_task``, awaited."""
        return await self._run(self._sync.archive_task, queue, task_id)

    async def delete_task(self, queue: str, task_id: str) -> None:
        """``Inspector.delete_task``, awaited."""
        return await self._run(self._sync.delete_task, queue, task_id)

    async def update_task_payload(self, queue: str, task_id: str, payload: bytes) -> TaskInfo:
        """``Inspector.update_task_payload``, awaited."""
        return await self._run(self._sync.update_task_payload, queue, task_id, payload)

    async def cancel_processing(self, task_id: str) -> int:
        """``Inspector.cancel_processing``, awaited."""
        return await self._run(self._sync.cancel_processing, task_id)

    async def run_all_scheduled_tasks(self, queue: str) -> int:
        """``Inspector.run_all_scheduled_tasks``, awaited."""
        return await self._run(self._sync.run_all_scheduled_tasks, queue)

    async def run_all_retry_tasks(self, queue: str) -> int:
        """``Inspector.run_all_retry_tasks``, awaited."""
        return await self._run(self._sync.run_all_retry_tasks, queue)

    async def run_all_archived_tasks(self, queue: str) -> int:
        """``Inspector.run_all_archived_tasks``, awaited."""
        return await self._run(self._sync.run_all_archived_tasks, queue)

    async def run_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """``Inspector.run_all_aggregating_tasks``, awaited."""
        return await self._run(self._sync.run_all_aggregating_tasks, queue, group)

    async def archive_all_pending_tasks(self, queue: str) -> int:
        """``Inspector.archive_all_pending_tasks``, awaited."""
        return await self._run(self._sync.archive_all_pending_tasks, queue)

    async def archive_all_scheduled_tasks(self, queue: str) -> int:
        """``Inspector.archive_all_scheduled_tasks``, awaited."""
        return await self._run(self._sync.archive_all_scheduled_tasks, queue)

    async def archive_all_retry_tasks(self, queue: str) -> int:
        """``Inspector.archive_all_retry_tasks``, awaited."""
        return await self._run(self._sync.archive_all_retry_tasks, queue)

    async def archive_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """``Inspector.archive_all_aggregating_tasks``, awaited."""
        return await self._run(self._sync.archive_all_aggregating_tasks, queue, group)

    async def delete_all_pending_tasks(self, queue: str) -> int:
        """``Inspector.delete_all_pending_tasks``, awaited."""
        return await self._run(self._sync.delete_all_pending_tasks, queue)

    async def delete_all_scheduled_tasks(self, queue: str) -> int:
        """``Inspector.delete_all_scheduled_tasks``, awaited."""
        return await self._run(self._sync.delete_all_scheduled_tasks, queue)

    async def delete_all_retry_tasks(self, queue: str) -> int:
        """``Inspector.delete_all_retry_tasks``, awaited."""
        return await self._run(self._sync.delete_all_retry_tasks, queue)

    async def delete_all_archived_tasks(self, queue: str) -> int:
        """``Inspector.delete_all_archived_tasks``, awaited."""
        return await self._run(self._sync.delete_all_archived_tasks, queue)

    async def delete_all_completed_tasks(self, queue: str) -> int:
        """``Inspector.delete_all_completed_tasks``, awaited."""
        return await self._run(self._sync.delete_all_completed_tasks, queue)

    async def delete_all_aggregating_tasks(self, queue: str, group: str) -> int:
        """``Inspector.delete_all_aggregating_tasks``, awaited."""
        return await self._run(self._sync.delete_all_aggregating_tasks, queue, group)

    async def run_all(self, queue: str, state: TaskState | str, *, group: str | None = None) -> int:
        """``Inspector.run_all``, awaited."""
        return await self._run(self._sync.run_all, queue, state, group=group)

    async def archive_all(
        self, queue: str, state: TaskState | str, *, group: str | None = None
    ) -> int:
        """``Inspector.archive_all``, awaited."""
        return await self._run(self._sync.archive_all, queue, state, group=group)

    async def delete_all(
        self, queue: str, state: TaskState | str, *, group: str | None = None
    ) -> int:
        """``Inspector.delete_all``, awaited."""
        return await self._run(self._sync.delete_all, queue, state, group=group)

    async def servers(self) -> list[ServerInfo]:
        """``Inspector.servers``, awaited."""
        return await self._run(self._sync.servers)

    async def scheduler_entries(self) -> list[SchedulerEntry]:
        """``Inspector.scheduler_entries``, awaited."""
        return await self._run(self._sync.scheduler_entries)

    async def list_scheduler_enqueue_events(
        self, entry_id: str, *, page: int | None = None, page_size: int | None = None
    ) -> list[SchedulerEnqueueEvent]:
        """``Inspector.list_scheduler_enqueue_events``, awaited."""
        return await self._run(
            self._sync.list_scheduler_enqueue_events, entry_id, page=page, page_size=page_size
        )

    async def redis_info(self) -> dict[str, str]:
        """``Inspector.redis_info``, awaited."""
        return await self._run(self._sync.redis_info)

    async def ping(self) -> None:
        """``Inspector.ping``, awaited."""
        return await self._run(self._sync.ping)

    async def close(self) -> None:
        """Waits for the calls under way, then closes the threads and idle connections.

        The AsyncInspector stays usable, as an ``Inspector`` does.
        """
        threads, self._threads = self._threads, None
        if threads is not None:
            await asyncio.get_running_loop().run_in_executor(None, threads.shutdown)
        self._sync.close()

    async def __aenter__(self) -> AsyncInspector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


if Inspector.__doc__:
    Inspector.__doc__ = Inspector.__doc__.format(
        default_page_size=NativeInspector.default_page_size,
        max_page_size=f"{NativeInspector.max_page_size:,}",
    )


def _state(state: TaskState | str) -> TaskState:
    return state if isinstance(state, TaskState) else TaskState(state)
