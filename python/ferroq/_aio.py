"""Handing calls to the core's I/O thread and settling their futures (``AsyncClient``).

The core runs what a coroutine submits on its own thread (``rust/io.rs``) and hands back the
replies a batch at a time; ``deliver`` settles each batch's futures with one wake-up of each
event loop involved.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferroq._native import NativeClient

__all__ = ["deliver", "submit"]


def deliver(items: list[tuple[Any, bool, Any]]) -> None:
    """Runs on the core's I/O thread: settles a batch of futures, one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
    for ctx, ok, value in items:
        loop, fut = ctx
        by_loop.setdefault(loop, []).append((fut, ok, value))
    for loop, batch in by_loop.items():
        # A loop that closed has nobody awaiting these any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, loop, batch, 0)


SETTLE_CHUNK = 16
"""Futures settled per loop iteration: the rest wait for the next one, so that timers and other
callbacks run between chunks instead of after a whole batch's coroutines (the loop's lag)."""


def _settle(
    loop: asyncio.AbstractEventLoop, batch: list[tuple[asyncio.Future[Any], bool, Any]], start: int
) -> None:
    end = start + SETTLE_CHUNK
    for fut, ok, value in batch[start:end]:
        if fut.done():
            continue  # cancelled by its caller
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    if end < len(batch):
        # call_soon from a callback runs in the next iteration, after this one's ready work.
        loop.call_soon(_settle, loop, batch, end)


def submit(native: NativeClient, method: Any, *args: Any) -> asyncio.Future[Any]:
    """``method(*args, context)`` on ``native``'s I/O thread (started); its reply's future."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    method(*args, (loop, fut))
    return fut
