"""``TaskHandle``: a task's state and result, read back or waited for.

Waiting never polls per waiter: the client's core keeps one Pub/Sub connection, servers announce
a task's end on its channel, and the waiter reads the task once when told (see
``rust/waiter.rs``). ``get`` blocks the calling thread (signals still work); ``await handle``
suspends the coroutine and blocks nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import json
import sys
from collections.abc import Generator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from ferroq._aio import deliver, submit
from ferroq._native import TaskInfo, TaskState
from ferroq.codec import JSON, RAW, Codec, codec_for
from ferroq.errors import (
    FerroqError,
    QueueNotFoundError,
    RemoteTaskError,
    ResultTimeoutError,
    ResultUnavailableError,
    TaskNotFoundError,
)

if TYPE_CHECKING:
    from ferroq._native import NativeClient

__all__ = ["TaskHandle", "remote_error"]

R = TypeVar("R")

_COMPLETED = TaskState("completed")
_ARCHIVED = TaskState("archived")
# Types whose values msgspec's decoders already return as such: no conversion needed.
_PLAIN: tuple[object, ...] = (Any, object, int, float, str, bool, type(None), list, dict)


def _timeout(timeout: float | timedelta | None) -> float | None:
    if isinstance(timeout, timedelta):
        return timeout.total_seconds()
    return timeout


class TaskHandle(Generic[R]):
    """A task that was enqueued: its state, its result, and a way to wait for it.

    ``R`` is what the task function returns. The handle holds no connection of its own: it
    reads through the client that made it.

    Attributes:
        id: The task's ID.
        queue: Its queue.
        enqueued: The task as the enqueue wrote it (``None`` for a handle made from an ID).
    """

    __slots__ = ("_codec", "_native", "_result_type", "enqueued", "id", "queue")

    def __init__(
        self,
        native: NativeClient,
        queue: str,
        task_id: str,
        *,
        codec: Codec = JSON,
        result_type: Any = Any,
        enqueued: TaskInfo | None = None,
    ) -> None:
        self._native = native
        self.queue = queue
        self.id = task_id
        self._codec = codec
        self._result_type = result_type
        self.enqueued = enqueued

    def info(self) -> TaskInfo:
        """The task as it is now (one read).

        Raises:
            TaskNotFoundError: It is gone (revoked, deleted, or its retention ended).
        """
        return self._native.task_info(self.queue, self.id)

    async def ainfo(self) -> TaskInfo:
        """``info`` for asyncio: read on the client's I/O thread, blocking nothing."""
        n = self._native
        n.start_io(deliver)  # a handle of a plain Client: its I/O thread starts once
        info: TaskInfo = await submit(n, n.submit_task_info, self.queue, self.id)
        return info

    @property
    def state(self) -> TaskState:
        """Where the task is now: pending, active, retry, completed, archived... (one read)."""
        return self.info().state

    @property
    def progress(self) -> Any:
        """The last progress the task reported (``Task.report_progress``), or ``None``."""
        raw = self.info().progress
        return None if raw is None else msgspec.json.decode(raw)

    def requeue(self) -> None:
        """Runs a failed (archived), retrying or scheduled task again now (RQ's ``requeue``).

        Raises:
            InvalidArgumentError: The task is pending, running or completed.
            TaskNotFoundError: It is gone.
        """
        self._native.run_task(self.queue, self.id)

    def ready(self) -> bool:
        """Whether the task ended: completed or archived (one read)."""
        return self.info().state in (_COMPLETED, _ARCHIVED)

    @property
    def result(self) -> R | None:
        """The result if the task completed, else ``None`` (one read; waits for nothing).

        Raises:
            RemoteTaskError: The task failed for good (it was archived).
        """
        info = self.info()
        if info.state == _COMPLETED or info.state == _ARCHIVED:
            return self._outcome(info)
        return None

    def get(self, timeout: float | timedelta | None = None) -> R:
        """Waits for the task to end and returns its result.

        Args:
            timeout: Longest wait in seconds; ``None`` waits as long as it takes.

        Returns:
            What the task function returned (decoded into its return annotation).

        Raises:
            RemoteTaskError: The task failed for good; the error is also an instance of the
                original exception type when that type is a built-in or already imported here.
            ResultTimeoutError: ``timeout`` passed first.
            ResultUnavailableError: The task keeps no result (``ignore_result``, no
                ``result_ttl``): there is nothing to wait for.
            TaskNotFoundError: The task is gone (revoked, deleted, or its result expired).
        """
        self._check_waitable()
        info = self._native.wait_task(self.queue, self.id, _timeout(timeout))
        if info is None:
            raise ResultTimeoutError(f"task {self.id} did not end within {timeout} s")
        return self._outcome(info)

    async def wait(self, timeout: float | timedelta | None = None) -> R:
        """As ``get``, for asyncio: suspends this coroutine, blocks nothing (``await handle``)."""
        self._check_waitable()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[TaskInfo | FerroqError] = loop.create_future()

        def ended(got: TaskInfo | FerroqError) -> None:
            # Runs on the core's waiter thread.
            # A loop closed while the task ran has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, got)

        wid = self._native.watch_task(self.queue, self.id, ended)
        try:
            got = await asyncio.wait_for(fut, _timeout(timeout))
        except asyncio.TimeoutError:
            got = await self._last_look(timeout)
        finally:
            self._native.unwatch(wid)
        if isinstance(got, FerroqError):
            raise got
        return self._outcome(got)

    async def _last_look(self, timeout: float | timedelta | None) -> TaskInfo:
        """After a wait ran out: the task if it had ended, else ``ResultTimeoutError``.

        With a short timeout the waiter may not have read the task yet; ``get`` looks too.
        """
        try:
            info = await self.ainfo()
        except (TaskNotFoundError, QueueNotFoundError):
            raise TaskNotFoundError(f"task {self.id} not found in queue {self.queue!r}") from None
        except FerroqError:
            info = None
        if info is None or info.state not in (_COMPLETED, _ARCHIVED):
            raise ResultTimeoutError(f"task {self.id} did not end within {timeout} s")
        return info

    def __await__(self) -> Generator[Any, None, R]:
        return self.wait().__await__()

    def _check_waitable(self) -> None:
        e = self.enqueued
        if e is not None and e.retention == timedelta(0):
            raise ResultUnavailableError(
                f"task {self.id} keeps no result (it was enqueued without result_ttl or "
                "retention, or with ignore_result): there is nothing to wait for"
            )

    def _outcome(self, info: TaskInfo) -> R:
        if info.state == _ARCHIVED:
            raise remote_error(info)
        data = info.result
        if data is None:
            return cast(R, None)
        # A result is in the codec its call's content-type names (JSON without one).
        codec = self._codec if self._codec is RAW else codec_for(info.headers, JSON)
        value = codec.decode(data)
        if self._result_type in _PLAIN:
            return cast(R, value)
        return cast(R, msgspec.convert(value, self._result_type, strict=False))

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id!r}, queue={self.queue!r})"


def _settle(fut: asyncio.Future[Any], got: Any) -> None:
    if not fut.done():
        fut.set_result(got)


_REMOTE_TYPES: dict[type[BaseException], type[RemoteTaskError]] = {}


def _local_type(name: str) -> type[BaseException] | None:
    """The exception class ``module.QualName`` names, if this process already has it.

    Nothing is imported: a type name read from Redis must not run code.
    """
    parts = name.split(".")
    # A bare name (asynq's error text carries no module) can only be a built-in.
    if len(parts) == 1 or parts[0] == "builtins":
        mod: object = builtins
        qual = parts[1:] if parts[0] == "builtins" else parts
    else:
        # The longest prefix that is a loaded module: the rest is a (nested) qualified name.
        for i in range(len(parts) - 1, 0, -1):
            found = sys.modules.get(".".join(parts[:i]))
            if found is not None:
                mod, qual = found, parts[i:]
                break
        else:
            return None
    if not qual:
        return None
    obj: object = mod
    for part in qual:
        # Static lookups only, and no private names: a module's __getattr__ (lazy imports) or a
        # descriptor must not run for a name read from Redis.
        if not part.isidentifier() or part.startswith("_"):
            return None
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def remote_error(info: TaskInfo) -> RemoteTaskError:
    """The error an archived task's record describes (``exception`` field, else its last error).

    When the original type is available here, the error is an instance of a subclass of both
    ``RemoteTaskError`` and that type.
    """
    type_name, message, tb = "", info.last_error or "", ""
    raw = info.error_detail
    if raw is not None:
        try:
            d = json.loads(raw)
            type_name = str(d.get("type") or "")
            message = str(d.get("message") or "")
            tb = str(d.get("traceback") or "")
        except Exception:  # written by someone else (or nested absurdly): use the error text
            pass
    if not type_name:
        # asynq's error text: "Type: message" when a ferroq server wrote it, else free text.
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier():
            type_name, message = head, rest
        else:
            type_name = "ferroq.errors.RemoteTaskError"
    cls = RemoteTaskError
    local = _local_type(type_name)
    if local is not None and not issubclass(local, RemoteTaskError):
        cls = _REMOTE_TYPES.get(local) or _remote_subclass(local)
    try:
        return cls(info.id, type_name, message, tb)
    except Exception:  # a type whose layout refuses the mix-in
        return RemoteTaskError(info.id, type_name, message, tb)


def _remote_subclass(local: type[BaseException]) -> type[RemoteTaskError]:
    try:
        cls = cast(
            type[RemoteTaskError],
            type(
                f"Remote{local.__name__}",
                (RemoteTaskError, local),
                # Reads as the original would (str(e) is its message), as Celery re-raises it.
                {"__module__": __name__, "__str__": lambda self: self.message},
            ),
        )
    except Exception:  # incompatible layouts, a metaclass or __init_subclass__ that refuses
        cls = RemoteTaskError
    _REMOTE_TYPES[local] = cls
    return cls
