"""Task functions: ``App`` and ``@app.task``, the API of Celery, RQ and arq on asynq's engine.

::

    app = ferroq.App("redis://127.0.0.1:6379")

    @app.task(queue="email", max_retry=5, retry=ferroq.RetryPolicy(delay=2))
    def send(to: str, subject: str) -> bool: ...

    handle = send.delay("ada@example.com", subject="hi")   # typed from the signature
    handle.get(timeout=10)                                 # True, or the task's error

``ferroq worker myapp:app`` serves every task the App registered. Arguments travel as
``{"args": [...], "kwargs": {...}}`` in the task's payload (``ferroq.codec``); the task type is
the task's name, so a Go handler or client can serve or call the same task.
"""

from __future__ import annotations

import abc
import inspect
import logging
import math
import os
import random
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypedDict, TypeVar, overload

import msgspec

from ferroq._native import DEFAULT_QUEUE, NativeClient, TaskInfo, TaskOptions
from ferroq._options import Duration, positive_seconds
from ferroq.client import AsyncClient, Client
from ferroq.codec import CONTENT_TYPE, JSON, Codec, codec_for, codec_named
from ferroq.errors import (
    FerroqError,
    InvalidArgumentError,
    MalformedMessageError,
    RevokeTask,
)
from ferroq.handle import _PLAIN, TaskHandle
from ferroq.servemux import Handler, ServeMux
from ferroq.task import _CURRENT, RetryRule, Task

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroq.server import Server

__all__ = [
    "App",
    "AsyncTaskFunction",
    "BoundTask",
    "CallOptions",
    "RetryPolicy",
    "TaskFunction",
]

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("ferroq.task")

EXPIRES = "ferroq-expires"
"""The header holding a call's ``expires`` (Unix seconds): a run that starts later is dropped."""

HeaderHook = Callable[[dict[str, str]], None]
"""``hook(headers)``: adds headers to every call of an App's task functions."""

DEFAULT_RESULT_TTL = 86400.0
"""How long results are kept unless the App or the task says otherwise (Celery's one day)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failed task function waits before its next attempt: exponential backoff.

    The n-th retry (n = 0, 1, ...) waits ``min(max_delay, delay * backoff**n)`` seconds, with
    "equal jitter" (a random point in the upper half of that) unless ``jitter`` is False, so a
    burst of failures does not retry in lockstep.

    Args:
        delay: The first retry's delay, seconds.
        backoff: Growth factor per retry (1 for a fixed delay).
        max_delay: The longest delay, seconds.
        jitter: Randomise each delay within its upper half.

    Raises:
        InvalidArgumentError: A negative or non-finite delay, or a backoff under 1.
    """

    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        for name in ("delay", "max_delay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
                raise InvalidArgumentError(f"RetryPolicy {name} must be seconds >= 0, got {v!r}")
        b = self.backoff
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 1 <= b < math.inf:
            raise InvalidArgumentError(f"RetryPolicy backoff must be at least 1, got {b!r}")

    def delay_for(self, retried: int) -> float:
        """Seconds before the attempt after ``retried`` retries."""
        try:
            d = min(self.max_delay, self.delay * self.backoff ** max(retried, 0))
        except OverflowError:
            d = self.max_delay
        if self.jitter and d > 0:
            d = d / 2 + random.uniform(0, d / 2)
        return d


class CallOptions(TypedDict, total=False):
    """The options of one call of a task function (``apply_async``, ``with_options``)."""

    queue: str
    """Queue (default: the task's)."""
    countdown: Duration
    """Run no sooner than this many seconds from now (Celery's ``countdown``)."""
    eta: datetime
    """Run no sooner than this aware datetime (Celery's ``eta``)."""
    expires: Duration | datetime
    """Drop the run if it has not started by then (seconds from now, or an aware datetime)."""
    task_id: str
    """Explicit ID, unique per queue."""
    max_retry: int
    """Retries after the first failure."""
    timeout: Duration
    """Per-run time limit."""
    deadline: datetime
    """Aware datetime after which a run is cancelled."""
    unique: Duration
    """Refuse duplicates (same task and arguments) for this long."""
    group: str
    """Aggregation group."""
    headers: Mapping[str, str]
    """Extra headers (an OpenTelemetry middleware puts its context here)."""
    result_ttl: Duration
    """How long the result is kept (0: not kept)."""


_CALL_ONLY = {"countdown", "eta", "expires", "result_ttl"}


def _seconds(v: Duration) -> float:
    return v.total_seconds() if isinstance(v, timedelta) else float(v)


class _TaskBase(abc.ABC, Generic[P, R]):
    """What sync and async task functions share: the calls that enqueue, and the handler."""

    def __init__(
        self,
        app: App,
        fn: Callable[..., Any],
        *,
        name: str,
        queue: str | None,
        max_retry: int | None,
        timeout: Duration | None,
        result_ttl: Duration | None,
        retry: RetryPolicy | None,
        autoretry_for: tuple[type[BaseException], ...] | None,
        dont_autoretry_for: tuple[type[BaseException], ...],
        codec: Codec,
        ignore_result: bool,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue or app.default_queue
        self.codec = codec
        self.retry = retry
        self.autoretry_for = autoretry_for
        self.dont_autoretry_for = dont_autoretry_for
        self.ignore_result = ignore_result
        ttl = app.result_ttl if result_ttl is None else _seconds(result_ttl)
        self.result_ttl = 0.0 if ignore_result else ttl
        # Built once and checked by the core now: a bad option fails at decoration, not later.
        self._options = TaskOptions(
            queue=self.queue,
            max_retry=app.max_retry if max_retry is None else max_retry,
            timeout=app.timeout if timeout is None else timeout,
            retention=self.result_ttl if self.result_ttl > 0 else None,
        )
        self._headers: dict[str, str] = {} if codec is JSON else {CONTENT_TYPE: codec.content_type}
        self._signature = inspect.signature(fn)
        hints = _hints(fn)
        self._convert = _converters(hints, self._signature)
        self._result_type: Any = hints.get("return", Any)
        if inspect.iscoroutinefunction(fn):
            self._result_type = _awaited(self._result_type)
        self.__name__ = getattr(fn, "__name__", name)
        self.__qualname__ = getattr(fn, "__qualname__", name)
        self.__doc__ = fn.__doc__
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn

    # ---- calling -------------------------------------------------------------------------

    def message(self, *args: P.args, **kwargs: P.kwargs) -> Task:
        """The ``Task`` a call would enqueue (for ``Client.enqueue_many`` or a ``Scheduler``).

        Raises:
            TypeError: An argument the codec cannot encode.
        """
        return self._message(args, kwargs, None)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueues a call with the task's options; returns its handle (RQ's ``enqueue``).

        Raises:
            TypeError: An argument the codec cannot encode.
            BrokerError: Redis failed.
        """
        return self._enqueue(args, kwargs, None)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueues a call with the task's options (Celery's ``delay``)."""
        return self._enqueue(args, kwargs, None)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> TaskHandle[R]:
        """Enqueues a call with options for this call (Celery's ``apply_async``).

        The arguments are not checked against the signature here (as in Celery): use
        ``with_options(...).enqueue(...)`` for calls the type checker verifies.

        Args:
            args: Positional arguments.
            kwargs: Keyword arguments.
            **options: ``CallOptions``: ``queue``, ``countdown``, ``eta``, ``expires``,
                ``task_id``, ``max_retry``, ``timeout``, ``deadline``, ``unique``, ``group``,
                ``headers``, ``result_ttl``.

        Raises:
            InvalidArgumentError: An option the core refuses (both ``countdown`` and ``eta``...).
            TypeError: An unknown option, or an argument the codec cannot encode.
        """
        return self._enqueue(tuple(args), dict(kwargs or {}), options)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """``enqueue`` for asyncio: through the App's ``AsyncClient``, blocking nothing."""
        return await self._aenqueue(args, kwargs, None)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """``delay`` for asyncio: through the App's ``AsyncClient``, blocking nothing."""
        return await self._aenqueue(args, kwargs, None)

    async def aapply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> TaskHandle[R]:
        """``apply_async`` for asyncio: through the App's ``AsyncClient``, blocking nothing."""
        return await self._aenqueue(tuple(args), dict(kwargs or {}), options)

    def with_options(self, **options: Unpack[CallOptions]) -> BoundTask[P, R]:
        """This task with options for the calls made through the result (typed like the task)."""
        return BoundTask(self, options)

    def periodic_options(self) -> dict[str, Any]:
        """The task's options as a ``Scheduler`` entry takes them (queue, retries...)."""
        o = self._options
        out: dict[str, Any] = {"queue": o.queue, "max_retry": o.max_retry}
        if o.timeout is not None:
            out["timeout"] = o.timeout
        if o.retention is not None:
            out["retention"] = o.retention
        return out

    def handle(self, task_id: str, queue: str | None = None) -> TaskHandle[R]:
        """The handle of a call enqueued earlier (Celery's ``AsyncResult(id)``)."""
        return TaskHandle(
            self.app.client._native, queue or self.queue, task_id, codec=self.codec,
            result_type=self._result_type,
        )  # fmt: skip

    def _message(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], call: Mapping[str, Any] | None
    ) -> Task:
        body: dict[str, Any] = {"args": list(args)} if args else {}
        if kwargs:
            body["kwargs"] = kwargs
        headers = self._headers
        if call is not None and "expires" in call:
            headers = {**headers, EXPIRES: _expires_at(call["expires"])}
        hooks = self.app._header_hooks
        if hooks:
            headers = dict(headers)
            for hook in hooks:
                hook(headers)
        return Task(self.name, self.codec.encode(body), headers=headers or None)

    def _enqueue(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], call: Mapping[str, Any] | None
    ) -> TaskHandle[R]:
        if self.app._eager:
            from ferroq.testing import eager_call

            return eager_call(self, args, kwargs)
        task = self._message(args, kwargs, call)
        opts = self._options if not call else self._options.merge(_call_options(call))
        native = self.app.client._native
        return self._handle(native, native.enqueue(task.type, task._payload, task.headers, opts))

    async def _aenqueue(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], call: Mapping[str, Any] | None
    ) -> TaskHandle[R]:
        if self.app._eager:
            from ferroq.testing import eager_acall

            return await eager_acall(self, args, kwargs)
        task = self._message(args, kwargs, call)
        opts = self._options if not call else self._options.merge(_call_options(call))
        client = self.app.aclient
        return self._handle(client._native, await client.enqueue(task, options=opts))

    def _handle(self, native: NativeClient, info: TaskInfo) -> TaskHandle[R]:
        return TaskHandle(
            native, info.queue, info.id, codec=self.codec, result_type=self._result_type,
            enqueued=info,
        )  # fmt: skip

    # ---- running -------------------------------------------------------------------------

    @abc.abstractmethod
    def _run(self, task: Task) -> Awaitable[None] | None:
        """The handler the App's mux routes this task's type to (sync or async by subclass)."""

    def _arguments(self, task: Task) -> tuple[list[Any], dict[str, Any]]:
        """The call ``task`` carries, decoded and converted to the parameters' annotations."""
        try:
            # The call's codec, as its content-type names it (JSON without one: the wire format).
            codec = codec_for(task.headers, JSON)
            body = codec.decode(task.payload) if task.payload else {}
        except (msgspec.DecodeError, InvalidArgumentError) as e:
            raise self._malformed(task, f"its payload cannot be decoded: {e}") from None
        if not isinstance(body, dict):
            raise self._malformed(task, "its payload is not an object {args, kwargs}")
        args, kwargs = body.get("args", []), body.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise self._malformed(task, "args must be an array and kwargs an object")
        expires = task.headers.get(EXPIRES)
        if expires is not None:
            try:
                late = time.time() > float(expires)
            except ValueError:
                raise self._malformed(task, f"bad {EXPIRES} header {expires!r}") from None
            if late:
                raise RevokeTask(f"task {task.id} expired before it started")
        for pos, name, hint in self._convert:
            try:
                if pos is not None and pos < len(args):
                    args[pos] = msgspec.convert(args[pos], hint, strict=False)
                elif name in kwargs:
                    kwargs[name] = msgspec.convert(kwargs[name], hint, strict=False)
            except msgspec.ValidationError as e:
                raise self._malformed(task, f"argument {name!r}: {e}") from None
        return args, kwargs

    def _malformed(self, task: Task, why: str) -> MalformedMessageError:
        # A call that cannot be decoded never will be: archive it now, with the reason.
        task._retry_rule = RetryRule(False, None)
        return MalformedMessageError(f"task {task.id} ({self.name}): {why}")

    def _judge(
        self, task: Task, exc: BaseException, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Records whether the error the function raised is retried, and after how long."""
        delay = self.retry.delay_for(task.retry_count) if self.retry is not None else None
        retry = True
        if isinstance(exc, TypeError) and not self._binds(args, kwargs):
            retry = False  # called with arguments its signature refuses: so would every retry
        elif isinstance(exc, Exception) and not isinstance(exc, FerroqError):
            # ferroq's own errors (Retry, SkipRetry...) say themselves what happens next.
            never = bool(self.dont_autoretry_for) and isinstance(exc, self.dont_autoretry_for)
            allowed = self.autoretry_for is None or isinstance(exc, self.autoretry_for)
            retry = allowed and not never
        task._retry_rule = RetryRule(retry, delay)

    def _binds(self, args: list[Any], kwargs: dict[str, Any]) -> bool:
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError:
            return False
        return True

    def _keep(self, task: Task, value: Any) -> None:
        if self.ignore_result:
            return
        try:
            # In the call's codec, so that whoever made the call reads it back.
            task._result = codec_for(task.headers, JSON).encode(value)
        except (TypeError, msgspec.EncodeError, InvalidArgumentError) as e:
            task._retry_rule = RetryRule(False, None)
            raise TypeError(f"task {task.id} ({self.name}) returned a value the codec cannot "
                            f"encode: {e}") from None  # fmt: skip

    def __repr__(self) -> str:
        return f"<task {self.name!r} queue={self.queue!r}>"


class TaskFunction(_TaskBase[P, R]):
    """A sync task function: call it to run it here, ``delay``/``enqueue`` to run it on a worker."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs the function here, now (as calling a Celery task does)."""
        return typing.cast(R, self.fn(*args, **kwargs))

    def _run(self, task: Task) -> None:
        args, kwargs = self._arguments(task)
        token = _CURRENT.set(task)
        try:
            value = self.fn(*args, **kwargs)
        except BaseException as e:
            self._judge(task, e, args, kwargs)
            raise
        finally:
            _CURRENT.reset(token)
        self._keep(task, value)


class AsyncTaskFunction(_TaskBase[P, R]):
    """An ``async def`` task function: it runs on the worker's event loop."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """The coroutine of a run here (await it)."""
        return typing.cast(Coroutine[Any, Any, R], self.fn(*args, **kwargs))

    async def _run(self, task: Task) -> None:
        args, kwargs = self._arguments(task)
        _CURRENT.set(task)  # this coroutine's own context: nothing to reset
        try:
            value = await self.fn(*args, **kwargs)
        except BaseException as e:
            self._judge(task, e, args, kwargs)
            raise
        self._keep(task, value)


class BoundTask(Generic[P, R]):
    """A task function with options for its calls: ``send.with_options(countdown=5).delay(...)``."""

    def __init__(self, task: _TaskBase[P, R], options: Mapping[str, Any]) -> None:
        self._task = task
        self._call = dict(options)
        _call_options(self._call)  # checked now, not at the first call

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueues a call with these options."""
        return self._task._enqueue(args, kwargs, self._call)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueues a call with these options (Celery's name)."""
        return self._task._enqueue(args, kwargs, self._call)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """``enqueue`` for asyncio."""
        return await self._task._aenqueue(args, kwargs, self._call)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """``delay`` for asyncio."""
        return await self._task._aenqueue(args, kwargs, self._call)


class _Decorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]  # as App.task's
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...


class App:
    """Task functions, the client that enqueues them and the mux a worker serves them with.

    Args:
        redis_url: Redis URL (see ``Client``); defaults to ``$REDIS_URL``.
        namespace: Key prefix (default asynq's).
        tls_ca_file: PEM file of the CA to trust for ``rediss://``.
        default_queue: The queue of tasks that name none.
        result_ttl: How long task results are kept, seconds (default one day; 0 keeps none).
        max_retry: Default retries of the App's tasks (default asynq's 25).
        timeout: Default per-run time limit of the App's tasks (default asynq's 30 minutes).
        codec: ``"json"`` (default) or ``"msgpack"``, or a ``ferroq.codec.Codec``.
        queues: Queue → priority for ``ferroq worker app`` (default: every queue the tasks
            use, priority 1).

    Example::

        app = App("redis://127.0.0.1:6379")

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        assert add.delay(2, 3).get(timeout=10) == 5
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        default_queue: str = DEFAULT_QUEUE,
        result_ttl: Duration = DEFAULT_RESULT_TTL,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        codec: str | Codec = "json",
        queues: Mapping[str, int] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.tls_ca_file = tls_ca_file
        self.default_queue = default_queue
        ttl = _seconds(result_ttl)
        if not 0 <= ttl < math.inf:
            raise InvalidArgumentError(f"result_ttl must be seconds >= 0, got {result_ttl!r}")
        self.result_ttl = ttl
        self.max_retry = max_retry
        self.timeout = timeout
        self.codec = codec_named(codec)
        self._queues = dict(queues) if queues is not None else None
        self.mux = ServeMux()
        self.tasks: dict[str, _TaskBase[Any, Any]] = {}
        self._client: Client | None = None
        self._aclient: AsyncClient | None = None
        # ferroq.testing.eager(app): calls run at once, in the caller.
        self._eager = False
        self._header_hooks: list[HeaderHook] = []

    @property
    def client(self) -> Client:
        """The App's client (made at first use; one per App, shared by its threads)."""
        if self._client is None:
            self._client = Client(
                self.redis_url, namespace=self.namespace, tls_ca_file=self.tls_ca_file
            )
        return self._client

    @property
    def aclient(self) -> AsyncClient:
        """The App's ``AsyncClient`` (made at first use): what ``adelay`` and friends use."""
        if self._aclient is None:
            self._aclient = AsyncClient(
                self.redis_url, namespace=self.namespace, tls_ca_file=self.tls_ca_file
            )
        return self._aclient

    @overload
    def task(  # type: ignore[overload-overlap]  # a coroutine function is also a Callable[P, R]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...
    @overload
    def task(
        self,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        result_ttl: Duration | None = None,
        retry: RetryPolicy | None = None,
        autoretry_for: Sequence[type[BaseException]] | None = None,
        dont_autoretry_for: Sequence[type[BaseException]] = (),
        codec: str | Codec | None = None,
        ignore_result: bool = False,
    ) -> _Decorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        result_ttl: Duration | None = None,
        retry: RetryPolicy | None = None,
        autoretry_for: Sequence[type[BaseException]] | None = None,
        dont_autoretry_for: Sequence[type[BaseException]] = (),
        codec: str | Codec | None = None,
        ignore_result: bool = False,
    ) -> Any:
        """Registers a sync or ``async def`` function as a task; usable with or without options.

        Args:
            fn: The function (when used as ``@app.task`` without parentheses).
            name: The task type (default ``module.function``, as Celery names tasks).
            queue: Its queue (default the App's ``default_queue``).
            max_retry: Retries after the first failure.
            timeout: Per-run time limit.
            result_ttl: How long its results are kept (default the App's).
            retry: Delays between attempts (default the server's ``retry_delay``, asynq's).
            autoretry_for: Retry only these exception types; others are archived at once
                (default: every exception is retried while retries are left, as asynq does).
            dont_autoretry_for: Never retry these (archived at once).
            codec: ``"json"`` or ``"msgpack"`` (default the App's).
            ignore_result: Keep no result (nothing to ``get``).

        Raises:
            InvalidArgumentError: A name already registered, or an option the core refuses.
        """

        def register(f: Callable[..., Any]) -> Any:
            if not callable(f):
                raise TypeError("@app.task decorates a function")
            task_name = name or f"{f.__module__}.{f.__name__}"
            if task_name in self.tasks:
                raise InvalidArgumentError(f"a task named {task_name!r} is already registered")
            cls: type[_TaskBase[Any, Any]] = (
                AsyncTaskFunction if inspect.iscoroutinefunction(f) else TaskFunction
            )
            t = cls(
                self, f, name=task_name, queue=queue, max_retry=max_retry, timeout=timeout,
                result_ttl=result_ttl, retry=retry,
                autoretry_for=None if autoretry_for is None else tuple(autoretry_for),
                dont_autoretry_for=tuple(dont_autoretry_for),
                codec=self.codec if codec is None else codec_named(codec),
                ignore_result=ignore_result,
            )  # fmt: skip
            self.mux.handle(task_name, typing.cast("Handler", t._run))
            self.tasks[task_name] = t
            return t

        return register if fn is None else register(fn)

    def on_enqueue(
        self, hook: Callable[[dict[str, str]], None]
    ) -> Callable[[dict[str, str]], None]:
        """Registers ``hook(headers)``, called with each call's headers before it is enqueued.

        A hook adds what should travel with every call (an OpenTelemetry context, a request
        ID); a ``ServeMux`` middleware reads it back from ``task.headers`` on the worker.
        """
        self._header_hooks.append(hook)
        return hook

    def handle(self, task_id: str, queue: str | None = None) -> TaskHandle[Any]:
        """The handle of any task by ID (its result decoded with the App's codec)."""
        return TaskHandle(
            self.client._native, queue or self.default_queue, task_id, codec=self.codec
        )

    @property
    def queues(self) -> dict[str, int]:
        """The queues a worker of this App serves: given, or every queue its tasks use."""
        if self._queues is not None:
            return dict(self._queues)
        names = {t.queue for t in self.tasks.values()} | {self.default_queue}
        return dict.fromkeys(sorted(names), 1)

    def server(self, **settings: Any) -> Server:
        """A ``Server`` for this App's Redis and queues (``settings`` as ``Server`` takes them)."""
        from ferroq.server import Server

        settings.setdefault("queues", self.queues)
        settings.setdefault("namespace", self.namespace)
        settings.setdefault("tls_ca_file", self.tls_ca_file)
        return Server(self.redis_url, **settings)

    def run_worker(self, **settings: Any) -> None:
        """Runs a worker for this App until SIGTERM or SIGINT (``ferroq worker module:app``)."""
        self.server(**settings).run(self.mux)

    def close(self) -> None:
        """Closes the App's client connections."""
        if self._client is not None:
            self._client.close()
        if self._aclient is not None:
            self._aclient._native.close()

    def __enter__(self) -> App:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- helpers ----------------------------------------------------------------------------------


def _call_options(call: Mapping[str, Any]) -> TaskOptions:
    """A call's options as the core's ``TaskOptions`` (Celery's names mapped to asynq's)."""
    unknown = set(call) - set(CallOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown call option(s): {', '.join(sorted(unknown))}")
    opts: dict[str, Any] = {k: v for k, v in call.items() if k not in _CALL_ONLY}
    if "countdown" in call:
        opts["process_in"] = call["countdown"]
    if "eta" in call:
        opts["process_at"] = call["eta"]
    if "result_ttl" in call:
        # Given as 0 it must say so: "not given" would keep the task's own result TTL.
        opts["retention"] = call["result_ttl"]
    return TaskOptions(**opts)


def _expires_at(v: Duration | datetime) -> str:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise InvalidArgumentError("expires must be an aware datetime (or seconds from now)")
        at = v.astimezone(timezone.utc).timestamp()
    else:
        at = time.time() + positive_seconds("expires", v)
    return repr(at)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: run without conversions
        return {}


def _awaited(t: Any) -> Any:
    """``R`` of ``Coroutine[Any, Any, R]`` / ``Awaitable[R]``; the annotation otherwise."""
    origin = typing.get_origin(t)
    if origin in (Coroutine, Awaitable):
        args = typing.get_args(t)
        return args[-1] if args else Any
    return t


def _converters(hints: dict[str, Any], sig: inspect.Signature) -> list[tuple[int | None, str, Any]]:
    """The parameters whose values need converting from the codec's plain values.

    As (position, name, annotation): a datetime, a dataclass... need converting; plain types
    (int, str, list...) come out of the decoder as they are.
    """
    out: list[tuple[int | None, str, Any]] = []
    for i, p in enumerate(sig.parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = hints.get(p.name, Any)
        if hint in _PLAIN:
            continue
        pos = i if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else None
        out.append((pos, p.name, hint))
    return out
