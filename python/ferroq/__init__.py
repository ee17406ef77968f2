"""ferroq: a fast, asynq-compatible task queue for Python with a Rust core.

Task functions (Celery's, RQ's and arq's shape)::

    from ferroq import App

    app = App("redis://127.0.0.1:6379")

    @app.task(queue="email", max_retry=5)
    def send(to: str, subject: str) -> bool: ...

    send.delay("ada@example.com", subject="hi").get(timeout=10)   # ferroq worker myapp:app

asynq's API (tasks with bytes payloads, shared with Go)::

    from ferroq import Client, Server, ServeMux, Task

    client = Client("redis://127.0.0.1:6379")
    client.enqueue(Task("email:send", b'{"to": 42}'), queue="critical", max_retry=5)

    mux = ServeMux()

    @mux.handle("email:")
    async def send(task: Task) -> None: ...

    Server("redis://127.0.0.1:6379", queues={"critical": 6, "default": 3}).run(mux)
"""

from ferroq._native import ServerConfig, TaskOptions, __version__
from ferroq.app import App, AsyncTaskFunction, BoundTask, CallOptions, RetryPolicy, TaskFunction
from ferroq.client import AsyncClient, Client
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
    NotReplicatedError,
    QueueNotEmptyError,
    QueueNotFoundError,
    RemoteTaskError,
    ResultTimeoutError,
    ResultUnavailableError,
    Retry,
    RevokeTask,
    ServerClosedError,
    SkipRetry,
    TaskCancelled,
    TaskIdConflictError,
    TaskNotFoundError,
)
from ferroq.handle import TaskHandle
from ferroq.inspector import (
    AsyncInspector,
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
from ferroq.queue import Queue
from ferroq.scheduler import Scheduler
from ferroq.servemux import AsyncHandler, Handler, Middleware, ServeMux, SyncHandler
from ferroq.server import Server
from ferroq.task import Task, TaskInfo, TaskState, current_task

__all__ = [
    "App",
    "AsyncClient",
    "AsyncHandler",
    "AsyncInspector",
    "AsyncTaskFunction",
    "BatchEnqueueError",
    "BoundTask",
    "BrokerConnectionError",
    "BrokerError",
    "CallOptions",
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
    "NotReplicatedError",
    "PeriodicTaskConfig",
    "PeriodicTaskManager",
    "Queue",
    "QueueInfo",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "RemoteTaskError",
    "ResultTimeoutError",
    "ResultUnavailableError",
    "Retry",
    "RetryPolicy",
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
    "TaskFunction",
    "TaskHandle",
    "TaskIdConflictError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskOptions",
    "TaskState",
    "WorkerInfo",
    "__version__",
    "current_task",
]
