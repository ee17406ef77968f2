"""ferroq: a fast, asynq-compatible task queue for Python with a Rust core.

The public API::

    from ferroq import Client, Server, ServeMux, Task

    client = Client("redis://127.0.0.1:6379")
    client.enqueue(Task("email:send", b'{"to": 42}'), queue="critical", max_retry=5)

    mux = ServeMux()

    @mux.handle("email:")
    async def send(task: Task) -> None: ...

    Server("redis://127.0.0.1:6379", queues={"critical": 6, "default": 3}).run(mux)
"""

from ferroq._native import ServerConfig, TaskOptions, __version__
from ferroq.client import Client
from ferroq.cron import CronSchedule
from ferroq.errors import (
    BatchEnqueueError,
    BrokerConnectionError,
    BrokerError,
    CronSpecError,
    DeadlineExceeded,
    DuplicateTaskError,
    FerroqError,
    HandlerNotFoundError,
    InvalidArgumentError,
    LeaseExpired,
    MalformedMessageError,
    QueueNotEmptyError,
    QueueNotFoundError,
    RevokeTask,
    ServerClosedError,
    SkipRetry,
    TaskCancelled,
    TaskIdConflictError,
    TaskNotFoundError,
)
from ferroq.inspector import (
    DailyStats,
    GroupInfo,
    Inspector,
    QueueInfo,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    WorkerInfo,
)
from ferroq.periodic import PeriodicTaskConfig, PeriodicTaskManager
from ferroq.scheduler import Scheduler
from ferroq.servemux import AsyncHandler, Handler, Middleware, ServeMux, SyncHandler
from ferroq.server import Server
from ferroq.task import Task, TaskInfo, TaskState

__all__ = [
    "AsyncHandler",
    "BatchEnqueueError",
    "BrokerConnectionError",
    "BrokerError",
    "Client",
    "CronSchedule",
    "CronSpecError",
    "DailyStats",
    "DeadlineExceeded",
    "DuplicateTaskError",
    "FerroqError",
    "GroupInfo",
    "Handler",
    "HandlerNotFoundError",
    "Inspector",
    "InvalidArgumentError",
    "LeaseExpired",
    "MalformedMessageError",
    "Middleware",
    "PeriodicTaskConfig",
    "PeriodicTaskManager",
    "QueueInfo",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "RevokeTask",
    "Scheduler",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "ServeMux",
    "Server",
    "ServerClosedError",
    "ServerConfig",
    "ServerInfo",
    "SkipRetry",
    "SyncHandler",
    "Task",
    "TaskCancelled",
    "TaskIdConflictError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskOptions",
    "TaskState",
    "WorkerInfo",
    "__version__",
]
