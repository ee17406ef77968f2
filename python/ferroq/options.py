"""Options: the core's ``TaskOptions`` and ``ServerConfig``, and the keywords the API takes.

The keywords are listed once here, as ``TypedDict``s (``None`` is "not given"), so that
``Client.enqueue(task, queue=..., timeout=...)``, ``Scheduler.register`` and ``Server(...)`` are
type-checked without each signature spelling the options again. Their rules and defaults are
the core's: a ``TaskOptions`` or ``ServerConfig`` that exists is a valid one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypedDict

from ferroq._native import ServerConfig, TaskOptions
from ferroq._options import Duration

__all__ = [
    "BatchOptions",
    "Duration",
    "EnqueueOptions",
    "PeriodicOptions",
    "ServerConfig",
    "ServerSettings",
    "TaskOptions",
]


class PeriodicOptions(TypedDict, total=False):
    """The options of a periodic entry: every firing's task gets them."""

    queue: str | None
    """Queue name (default ``"default"``)."""
    max_retry: int | None
    """Retries after the first failure (default 25)."""
    timeout: Duration | None
    """Per-run time limit; without it and without ``deadline``, 30 minutes (asynq's)."""
    deadline: datetime | None
    """Aware datetime after which a run is cancelled."""
    unique: Duration | None
    """Refuse duplicates of (queue, type, payload) for this long (at least 1 s)."""
    retention: Duration | None
    """Keep the task, and its result, this long after success."""
    group: str | None
    """Aggregation group."""
    headers: Mapping[str, str] | None
    """Headers laid over the task's own."""


class BatchOptions(PeriodicOptions, total=False):
    """The options of ``enqueue_many``: a periodic entry's, and when to run."""

    process_at: datetime | None
    """Aware datetime to run at (scheduled until then)."""
    process_in: Duration | None
    """Delay before running."""


class EnqueueOptions(BatchOptions, total=False):
    """The options of one enqueue: all of them."""

    task_id: str | None
    """Explicit ID (default a random UUID v4); unique per queue in every state."""


class ServerSettings(TypedDict, total=False):
    """The settings of ``Server``, as ``ServerConfig`` takes them (defaults: ``ServerConfig()``)."""

    concurrency: int | None
    queues: Mapping[str, int] | None
    strict_priority: bool | None
    task_check_interval: Duration | None
    delayed_task_check_interval: Duration | None
    janitor_interval: Duration | None
    janitor_batch_size: int | None
    heartbeat_interval: Duration | None
    recoverer_interval: Duration | None
    syncer_interval: Duration | None
    shutdown_timeout: Duration | None
    cancel_grace: Duration | None
    lease_duration: Duration | None
    lease_grace: Duration | None
    archive_max_size: int | None
    archive_max_age: Duration | None
    wait_for_replicas: int | None
    replica_timeout: Duration | None
    declare_keys: bool | None


def layered(base: TaskOptions | None, over: Mapping[str, object]) -> TaskOptions | None:
    """``base`` with the keyword options ``over`` laid over it (``None`` when neither sets any)."""
    if not over:
        return base
    given = TaskOptions(**over)  # type: ignore[arg-type]
    return given if base is None else base.merge(given)
