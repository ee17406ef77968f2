"""Routing tasks to handlers by type, with middleware, as asynq's ``ServeMux``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeAlias, overload

from ferroq.errors import HandlerNotFoundError, InvalidArgumentError
from ferroq.task import Task

__all__ = ["AsyncHandler", "Handler", "Middleware", "ServeMux", "SyncHandler", "not_found"]

SyncHandler: TypeAlias = Callable[[Task], None]
"""``def handle(task: Task) -> None``: runs on the server's thread pool."""
AsyncHandler: TypeAlias = Callable[[Task], Awaitable[None]]
"""``async def handle(task: Task) -> None``: runs on the server's asyncio loop."""
Handler: TypeAlias = SyncHandler | AsyncHandler
"""A sync or async handler."""
Middleware: TypeAlias = Callable[[Handler], Handler]
"""Wraps a handler; return an ``async def`` wrapper for async handlers to keep them async."""


def not_found(task: Task) -> None:
    """The handler for types nothing matches: fails like asynq's (retried, then archived)."""
    raise HandlerNotFoundError(f'handler not found for task "{task.type}"')


def is_async(handler: Handler) -> bool:
    """Whether calling ``handler`` returns an awaitable to run on the event loop."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)


class ServeMux:
    """Routes a task to the handler whose pattern matches its type.

    An exact match wins; otherwise the longest pattern that is a prefix of the type (so
    ``"email:"`` serves ``"email:welcome"``). Middleware registered with ``use`` wraps every
    handler, the first registered outermost.

    Example::

        mux = ServeMux()

        @mux.handle("email:")
        async def send_email(task: Task) -> None: ...

        mux.handle("image:resize", resize)
        mux.use(log_middleware)
    """

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []
        self._middleware: list[Middleware] = []
        self._not_found: Handler = not_found
        self._cache: dict[str, tuple[Handler, bool]] = {}

    @overload
    def handle(self, pattern: str) -> Callable[[Handler], Handler]: ...

    @overload
    def handle(self, pattern: str, handler: Handler) -> Handler: ...

    def handle(
        self, pattern: str, handler: Handler | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Registers ``handler`` for ``pattern``; without a handler, returns a decorator.

        Raises:
            InvalidArgumentError: The pattern is blank or already registered.
            TypeError: The handler is not callable.
        """
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidArgumentError("pattern must be a non-blank str")
        if pattern in self._exact:
            raise InvalidArgumentError(f"a handler is already registered for {pattern!r}")

        def register(h: Handler) -> Handler:
            if not callable(h):
                raise TypeError(f"handler for {pattern!r} is not callable")
            self._exact[pattern] = h
            self._prefixes.append((pattern, h))
            self._prefixes.sort(key=lambda p: len(p[0]), reverse=True)
            self._cache.clear()
            return h

        return register if handler is None else register(handler)

    def use(self, *middleware: Middleware) -> None:
        """Adds middleware; ``use(a, b)`` runs ``a`` around ``b`` around the handler."""
        self._middleware.extend(middleware)
        self._cache.clear()

    def not_found_handler(self, handler: Handler) -> Handler:
        """Replaces the handler for unmatched types (default: raise ``HandlerNotFoundError``)."""
        self._not_found = handler
        self._cache.clear()
        return handler

    def match(self, task_type: str) -> Handler | None:
        """The registered handler for ``task_type``, without middleware; ``None`` if none."""
        h = self._exact.get(task_type)
        if h is not None:
            return h
        for pattern, handler in self._prefixes:
            if task_type.startswith(pattern):
                return handler
        return None

    def resolve(self, task_type: str) -> Handler:
        """The handler for ``task_type`` (matched, else not-found), wrapped in middleware."""
        return self._route(task_type)[0]

    def _route(self, task_type: str) -> tuple[Handler, bool]:
        """``resolve(task_type)`` and whether that handler is async, cached together.

        The dispatcher's lookup; ``ferroq._dispatch._router`` says why.
        """
        route = self._cache.get(task_type)
        if route is None:
            h = self.match(task_type) or self._not_found
            for mw in reversed(self._middleware):
                h = mw(h)
            route = (h, is_async(h))
            if len(self._cache) >= 4096:
                # Unmatched types are unbounded (they come from producers); keep the cache small.
                self._cache.clear()
            self._cache[task_type] = route
        return route

    def __call__(self, task: Task) -> Awaitable[None] | None:
        """Runs the handler for ``task`` (so a mux can be used where a handler is expected)."""
        return self.resolve(task.type)(task)
