"""Tasks as the client writes them and as handlers receive them.

``TaskInfo`` and ``TaskState`` are the core's types (``ferroq._native``): what an enqueue wrote,
and later anything read back from Redis, is described by the same class.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from ferroq._native import TaskInfo, TaskState, check_task

if TYPE_CHECKING:
    from ferroq._native import Lease, NativeServer

__all__ = ["Task", "TaskInfo", "TaskState", "current_task"]


def _check_payload(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes, not {payload.__class__.__name__}; "
        "encode text or JSON first (for example json.dumps(obj).encode())"
    )


_CURRENT: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "ferroq_current_task", default=None
)


def current_task() -> Task:
    """The task whose task function is running (to ``report_progress`` or read its ``id``).

    Raises:
        RuntimeError: Not inside a task function run by a worker.
    """
    t = _CURRENT.get()
    if t is None:
        raise RuntimeError("current_task() is only available inside a running task function")
    return t


# Guards the lazy creation of a task's cancellation Event against a concurrent cancel.
_CANCEL_LOCK = threading.Lock()


class RetryRule(NamedTuple):
    """A task function's verdict on the error its run raised (read by the failure policy)."""

    retry: bool
    """False: archive now, whatever retries are left."""
    delay: float | None
    """Seconds before the next attempt; ``None`` for the server's ``retry_delay``."""


class Task:
    """A unit of work: a type that picks the handler, an opaque payload and headers.

    On the client it is what you enqueue. In a handler it also carries where it came from:
    ``id``, ``queue``, ``retry_count``, ``max_retry`` and ``deadline``; ``write_result`` stores
    bytes for an Inspector to read, and ``cancelled`` tells a long-running sync handler to stop.

    Args:
        type: Task type; routes it to a handler (``ServeMux`` matches by prefix).
        payload: Opaque bytes. ferroq never pickles: encode with JSON, msgpack, protobuf...
            Omitted (``None``) it is asynq's nil payload; ``b""`` is an empty one. They differ
            only in the unique-lock key, where asynq tells them apart too.
        headers: String metadata carried with the task (asynq v0.26+ reads it too).

    Raises:
        TypeError: ``payload`` is not bytes, or ``type`` or a header is not a str.
        InvalidArgumentError: ``type`` is blank.
    """

    __slots__ = (
        "_asyncio_task",
        "_cancel",
        "_cancel_error",
        "_cancelled",
        "_deadline",
        "_deadline_ts",
        "_eager_progress",
        "_lease",
        "_payload",
        "_reported",
        "_result",
        "_retry_rule",
        "_server",
        "_token",
        "headers",
        "id",
        "max_retry",
        "queue",
        "retry_count",
        "type",
    )

    def __init__(
        self,
        type: str,
        payload: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # The core holds the rules for a type and headers; the enqueue applies the same ones.
        self.headers: dict[str, str] = check_task(type, headers)
        self.type: str = type
        self._payload: bytes | None = None if payload is None else _check_payload(payload)
        self.id: str | None = None
        self.queue: str | None = None
        self.retry_count: int = 0
        self.max_retry: int = 0
        self._deadline: datetime | None = None
        self._deadline_ts: float | None = None
        self._server: NativeServer | None = None
        self._lease: Lease | None = None
        self._token = 0
        self._cancelled = False
        self._cancel: threading.Event | None = None
        self._reported = False
        self._cancel_error: BaseException | None = None
        self._asyncio_task: asyncio.Task[None] | None = None
        self._result: bytes | None = None
        self._retry_rule: RetryRule | None = None
        # ferroq.testing's eager mode: where report_progress keeps its reports.
        self._eager_progress: list[Any] | None = None

    @classmethod
    def _from_info(
        cls, info: TaskInfo, server: NativeServer | None = None, lease: Lease | None = None
    ) -> Task:
        """The task ``info`` describes: leased by ``server`` under ``lease``, or by no one here.

        Unleased, it is for hooks about a task that does not run here, such as one recovered
        after its lease expired.
        """
        t = cls.__new__(cls)
        t.type, t._payload, t.headers = info.type, info.payload, info.headers
        t.id, t.queue, t.retry_count = info.id, info.queue, info.retried
        t.max_retry = info.max_retry
        # The datetime and the cancellation Event are made only if a handler asks for them.
        t._deadline = None
        if lease is None:
            t._deadline_ts, t._token = None, 0
        else:
            t._deadline_ts, t._token = lease.deadline, lease.token
        t._server, t._lease = server, lease
        t._cancelled, t._cancel, t._reported, t._cancel_error = False, None, False, None
        t._asyncio_task = None
        t._result, t._retry_rule, t._eager_progress = None, None, None
        return t

    @classmethod
    def _leased(cls, server: NativeServer, lease: Lease) -> Task:
        """The task a handler receives for ``lease`` (the server keeps it as the lease's handle)."""
        return cls._from_info(lease.info, server, lease)

    @property
    def deadline(self) -> datetime | None:
        """When a running task is cancelled (aware UTC); ``None`` outside a handler."""
        if self._deadline is None and self._deadline_ts is not None:
            try:
                self._deadline = datetime.fromtimestamp(self._deadline_ts, timezone.utc)
            except (OverflowError, OSError, ValueError):
                # A deadline beyond datetime's range (year 9999) is as good as none.
                self._deadline = datetime.max.replace(tzinfo=timezone.utc)
        return self._deadline

    @property
    def payload(self) -> bytes:
        """The payload (``b""`` when there is none)."""
        return self._payload if self._payload is not None else b""

    def write_result(self, data: bytes) -> int:
        """Stores ``data`` as this task's result (kept with the task when it has retention).

        Returns:
            The number of bytes written.

        Raises:
            RuntimeError: Called outside a handler.
            TaskNotFoundError: The task no longer runs here.
        """
        if self._server is None:
            raise RuntimeError("write_result is only available inside a handler")
        return self._server.write_result(self._token, _check_payload(data))

    def report_progress(self, progress: Any) -> None:
        """Records how far the task got (any JSON-able value: ``{"done": 3, "total": 10}``).

        Kept in the task hash's ``progress`` field: ``TaskHandle.progress``, the Inspector's
        ``TaskInfo.progress`` and ``ferroq task inspect`` show the latest report.

        Raises:
            RuntimeError: Called outside a handler.
            TypeError: A value JSON cannot hold.
            TaskNotFoundError: The task no longer runs here.
        """
        import msgspec

        try:
            data = msgspec.json.encode(progress)
        except (TypeError, msgspec.EncodeError) as e:
            raise TypeError(f"progress must be JSON-able: {e}") from None
        if self._eager_progress is not None:
            self._eager_progress.append(msgspec.json.decode(data))
            return
        if self._server is None:
            raise RuntimeError("report_progress is only available inside a handler")
        self._server.write_progress(self._token, data)

    @property
    def cancelled(self) -> bool:
        """True once the task passed its deadline or was cancelled; a sync handler should stop."""
        return self._cancelled

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Blocks up to ``timeout`` seconds until the task is cancelled; returns ``cancelled``."""
        if self._server is None:
            return False
        with _CANCEL_LOCK:
            if self._cancel is None:
                self._cancel = threading.Event()
                if self._cancelled:
                    self._cancel.set()
            event = self._cancel
        return event.wait(timeout)

    def _mark_cancelled(self) -> None:
        """Called by the server: sets ``cancelled`` and wakes ``wait_cancelled``."""
        with _CANCEL_LOCK:
            self._cancelled = True
            event = self._cancel
        if event is not None:
            event.set()

    def __repr__(self) -> str:
        where = f" id={self.id!r} queue={self.queue!r}" if self.id else ""
        return f"Task(type={self.type!r}, payload={self.payload[:32]!r}{where})"
