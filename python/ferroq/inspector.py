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

import os
from datetime import timedelta

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
    "DailyStats",
    "GroupInfo",
    "Inspector",
    "QueueInfo",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "ServerInfo",
    "WorkerInfo",
]

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


if Inspector.__doc__:
    Inspector.__doc__ = Inspector.__doc__.format(
        default_page_size=NativeInspector.default_page_size,
        max_page_size=f"{NativeInspector.max_page_size:,}",
    )


def _state(state: TaskState | str) -> TaskState:
    return state if isinstance(state, TaskState) else TaskState(state)
