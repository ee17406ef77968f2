"""Tasks as the client writes them and as handlers receive them."""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ferroq.errors import InvalidArgumentError

if TYPE_CHECKING:
    from ferroq._native import NativeServer

__all__ = ["Task", "TaskInfo", "TaskState"]


class TaskState(str, enum.Enum):
    """Where a task is in its life, with asynq's state names."""

    ACTIVE = "active"
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RETRY = "retry"
    ARCHIVED = "archived"
    COMPLETED = "completed"
    AGGREGATING = "aggregating"


def _check_type(type: str) -> str:
    if not isinstance(type, str):
        raise TypeError(f"task type must be a str, not {type.__class__.__name__}")
    if not type.strip():
        raise InvalidArgumentError("task type must not be blank")
    return type


def _check_payload(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes, not {payload.__class__.__name__}; "
        "encode text or JSON first (for example json.dumps(obj).encode())"
    )


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    out = dict(headers)
    for k, v in out.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("headers must map str to str")
    return out


# Guards the lazy creation of a task's cancellation Event against a concurrent cancel.
_CANCEL_LOCK = threading.Lock()


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
        TypeError: ``payload`` is not bytes, or ``type`` is not a str.
        InvalidArgumentError: ``type`` is blank.
    """

    __slots__ = (
        "_cancel",
        "_cancelled",
        "_deadline",
        "_deadline_ts",
        "_payload",
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
        self.type: str = _check_type(type)
        self._payload: bytes | None = None if payload is None else _check_payload(payload)
        self.headers: dict[str, str] = _check_headers(headers)
        self.id: str | None = None
        self.queue: str | None = None
        self.retry_count: int = 0
        self.max_retry: int = 0
        self._deadline: datetime | None = None
        self._deadline_ts: float | None = None
        self._server: NativeServer | None = None
        self._token = 0
        self._cancelled = False
        self._cancel: threading.Event | None = None

    @classmethod
    def _leased(
        cls,
        server: NativeServer,
        row: tuple[int, str, str, bytes, dict[str, str], str, int, int, int],
    ) -> Task:
        token, id, type, payload, headers, queue, retried, retry, deadline = row
        t = cls.__new__(cls)
        t.type, t._payload, t.headers, t.id, t.queue = type, payload, headers, id, queue
        t.retry_count, t.max_retry = retried, retry
        # The datetime and the cancellation Event are made only if a handler asks for them.
        t._deadline, t._deadline_ts = None, deadline
        t._server, t._token, t._cancelled, t._cancel = server, token, False, None
        return t

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


def _utc(ts: int) -> datetime | None:
    return datetime.fromtimestamp(ts, timezone.utc) if ts > 0 else None


_InfoRow = tuple[str, str, str, bytes, dict[str, str], str, int, int, int, int, int, str]


class TaskInfo:
    """What was written for a task (read-only).

    Built from the core's reply without converting anything up front: ``enqueue_many`` returns
    thousands of these, and most callers only read ``id``.

    Attributes:
        id: Task ID.
        queue: Queue name.
        type: Task type.
        payload: Payload bytes.
        headers: Headers.
        state: Current state.
        max_retry: Retries allowed.
        retried: Retries done.
        last_error: Last error text, if any.
        timeout: Per-run time limit, if any.
        deadline: Absolute deadline, if any.
        next_process_at: When it will run next, if known.
        retention: How long it is kept after success.
        group: Aggregation group, if any.
    """

    __slots__ = ("_row",)

    def __init__(self, row: _InfoRow) -> None:
        self._row = row

    @classmethod
    def _from_native(cls, row: _InfoRow) -> TaskInfo:
        return cls(row)

    @property
    def id(self) -> str:
        """Task ID."""
        return self._row[0]

    @property
    def queue(self) -> str:
        """Queue name."""
        return self._row[1]

    @property
    def type(self) -> str:
        """Task type."""
        return self._row[2]

    @property
    def payload(self) -> bytes:
        """Payload bytes."""
        return self._row[3]

    @property
    def headers(self) -> dict[str, str]:
        """Headers."""
        return dict(self._row[4])

    @property
    def state(self) -> TaskState:
        """Current state."""
        return TaskState(self._row[5])

    @property
    def max_retry(self) -> int:
        """Retries allowed."""
        return self._row[6]

    @property
    def retried(self) -> int:
        """Retries done (0 for a task just enqueued)."""
        return 0

    @property
    def last_error(self) -> str | None:
        """Last error text (none for a task just enqueued)."""
        return None

    @property
    def timeout(self) -> timedelta | None:
        """Per-run time limit, if any."""
        return timedelta(seconds=self._row[7]) if self._row[7] > 0 else None

    @property
    def deadline(self) -> datetime | None:
        """Absolute deadline, if any."""
        return _utc(self._row[8])

    @property
    def next_process_at(self) -> datetime | None:
        """When it will run next, if known."""
        return _utc(self._row[9])

    @property
    def retention(self) -> timedelta:
        """How long it is kept after success."""
        return timedelta(seconds=self._row[10])

    @property
    def group(self) -> str | None:
        """Aggregation group, if any."""
        return self._row[11] or None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskInfo) and self._row == other._row

    def __hash__(self) -> int:
        return hash(self._row[0])

    def __repr__(self) -> str:
        return (
            f"TaskInfo(id={self.id!r}, queue={self.queue!r}, type={self.type!r}, "
            f"state={self.state.value!r}, next_process_at={self.next_process_at})"
        )
